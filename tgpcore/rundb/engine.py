"""Connect to the run database and bring its schema up to date.

The database is SQLite by default (one file beside the run folders) and any SQLAlchemy URL,
PostgreSQL included, through ``TGP_DATABASE_URL``. The schema is owned by the Alembic
migrations packaged in ``tgpcore/rundb/migrations``; Alembic is configured here in code, so
it works from an installed package and from any working directory.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from tgpcore.rundb.coltypes import dumps_json
from tgpcore.settings import ENV_DATABASE_URL as ENV_VAR
from tgpcore.settings import default_out_root

DEFAULT_DB_NAME = "tgp-runs.sqlite"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0

# Alembic's ``context`` proxy is process-global, so migrations in one process run one at a time.
_ALEMBIC_LOCK = threading.Lock()


def resolve_database_url(out_root: str | Path | None = None) -> str:
    """Return the run-database URL.

    Parameters
    ----------
    out_root : str or Path, optional
        Output root of the runs. Defaults to ``$TGP_OUT_ROOT`` or ``./tgp-out``.

    Returns
    -------
    str
        ``$TGP_DATABASE_URL`` if set and non-empty; otherwise
        ``sqlite:///<out_root>/tgp-runs.sqlite`` with an absolute path (the directory is
        created).
    """
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env
    root = Path(out_root if out_root is not None else default_out_root()).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return URL.create("sqlite", database=str(root / DEFAULT_DB_NAME)).render_as_string()


def _configure_sqlite(engine: Engine) -> None:
    """WAL journal, a busy timeout, foreign keys, and ``BEGIN IMMEDIATE`` transactions.

    pysqlite's own transaction handling is switched off: every transaction takes SQLite's
    write lock when it begins, so concurrent writers wait (up to the busy timeout) instead
    of failing when a read transaction is later upgraded to a write.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine for the run database.

    Parameters
    ----------
    url : str or sqlalchemy.engine.URL
        Any SQLAlchemy URL, e.g. ``sqlite:////data/out/tgp-runs.sqlite`` or
        ``postgresql+psycopg://postgres@127.0.0.1:5432/tgp``.
    **kwargs
        Passed on to :func:`sqlalchemy.create_engine`.

    Returns
    -------
    sqlalchemy.Engine
        For SQLite: WAL journal, 30 s busy timeout, foreign keys on. For other databases:
        ``pool_pre_ping=True``. JSON columns accept NumPy values and paths.
    """
    url = make_url(url)
    kwargs.setdefault("json_serializer", dumps_json)
    if url.get_backend_name() == "sqlite":
        connect_args = kwargs.setdefault("connect_args", {})
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def alembic_config(connection: Connection | None = None) -> Any:
    """Return an :class:`alembic.config.Config` for the packaged migrations.

    Parameters
    ----------
    connection : sqlalchemy.Connection, optional
        Connection the migration environment should use (``config.attributes``).
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _migrate(url_or_engine: str | URL | Engine, revision: str, direction: str) -> None:
    from alembic import command

    engine = url_or_engine if isinstance(url_or_engine, Engine) else make_engine(url_or_engine)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with _ALEMBIC_LOCK, engine.connect() as conn:
            if sqlite:
                # Batch migrations copy and drop tables; with foreign keys on, dropping a
                # parent would cascade. The pragma only takes effect outside a transaction.
                conn.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")
            try:
                with conn.begin():
                    if engine.dialect.name == "postgresql":
                        # Serialise concurrent upgrades of one schema, across processes.
                        conn.execute(text(
                            "SELECT pg_advisory_xact_lock("
                            "hashtext('tgp-rundb-migrate:' || current_schema()))"))
                    cfg = alembic_config(conn)
                    if direction == "up":
                        command.upgrade(cfg, revision)
                    else:
                        command.downgrade(cfg, revision)
            finally:
                if sqlite:
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys = ON")
    finally:
        if engine is not url_or_engine:
            engine.dispose()


def upgrade(url_or_engine: str | URL | Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision``.

    Idempotent. On PostgreSQL an advisory lock makes concurrent callers (other processes)
    wait for each other; on SQLite the ``BEGIN IMMEDIATE`` write lock does the same.

    Parameters
    ----------
    url_or_engine : str, URL or Engine
        Database to migrate. An engine created here from a URL is disposed afterwards.
    revision : str
        Target revision, ``"head"`` by default.
    """
    _migrate(url_or_engine, revision, "up")


def downgrade(url_or_engine: str | URL | Engine, revision: str = "base") -> None:
    """Run the Alembic migrations down to ``revision`` (``"base"``: drop every table).

    Parameters
    ----------
    url_or_engine : str, URL or Engine
        Database to migrate.
    revision : str
        Target revision, ``"base"`` by default.
    """
    _migrate(url_or_engine, revision, "down")


def current_revision(engine: Engine) -> str | None:
    """Return the database's current Alembic revision, or ``None`` if unversioned."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        opts = {"version_table_schema": _version_table_schema(conn)}
        return MigrationContext.configure(conn, opts=opts).get_current_revision()


def head_revision() -> str:
    """Return the head revision of the packaged migrations."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _version_table_schema(conn: Connection) -> str | None:
    """Schema of Alembic's version table: the connection's current schema on PostgreSQL.

    Naming it explicitly keeps one version table per schema when ``search_path`` selects
    the schema (as the tests do), instead of whichever ``alembic_version`` is visible.
    """
    if conn.dialect.name == "postgresql":
        return conn.execute(text("SELECT current_schema()")).scalar_one()
    return None


def open_db(url: str | URL | None = None) -> Engine:
    """Create an engine and migrate the database to the latest schema.

    Safe to call more than once, and from several processes at once.

    Parameters
    ----------
    url : str or URL, optional
        Database URL; :func:`resolve_database_url` by default.

    Returns
    -------
    sqlalchemy.Engine
    """
    engine = make_engine(url if url is not None else resolve_database_url())
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Yield a session that commits on success and rolls back on error.

    Objects keep their loaded attributes after the commit (``expire_on_commit=False``), so
    they can be used once the session has closed.
    """
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
