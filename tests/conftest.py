"""Shared pytest fixtures.

Database fixtures
-----------------
``pg_server_url``
    Session-wide PostgreSQL database (``tgp_test_<pid>_<hex>``) created on the server at
    ``$TGP_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``)
    and dropped at the end. Skips if the server is unreachable, unless ``CI`` is set or
    ``TGP_REQUIRE_POSTGRES=1``, in which case it fails.
``unmigrated_db_url``
    A fresh database without tables, once per backend (ids ``sqlite`` and ``postgresql``):
    a file in ``tmp_path``, or a fresh schema in the session database selected through
    ``search_path`` (so Alembic's version table is per schema too).
``db_url``
    The same, migrated to the latest schema.
``rundb``
    ``RunDB(open_db(db_url))``; its engine is disposed afterwards.

Prefect
-------
``prefect_harness``
    A temporary Prefect server for one test module (``pytestmark =
    pytest.mark.usefixtures("prefect_harness")``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, create_engine, text

# No test may reach a remote service: the pipeline's catalogue stages use caches and local files
# only (tests of the remote paths use fake servers on 127.0.0.1 explicitly).
os.environ["TGP_OFFLINE"] = "1"
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from tgpcore.rundb import RunDB, open_db, upgrade

PG_ADMIN_URL = os.environ.get("TGP_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _postgres_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("TGP_REQUIRE_POSTGRES") == "1"


def pg_admin_engine(can_fail: bool = True) -> Engine:
    """An AUTOCOMMIT engine on the server at ``PG_ADMIN_URL``.

    Skips the test if the server is unreachable; with ``can_fail``, fails it instead when
    ``CI`` is set or ``TGP_REQUIRE_POSTGRES=1``.
    """
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        admin.dispose()
        reason = f"PostgreSQL unreachable at {make_url(PG_ADMIN_URL)!r}: {exc.__cause__ or exc}"
        if not can_fail:
            pytest.skip(reason)
        if _postgres_required():
            pytest.fail(reason)
        pytest.skip(f"{reason} (set TGP_REQUIRE_POSTGRES=1 or CI to fail instead)")
    return admin


@contextmanager
def temporary_pg_databases(names: Sequence[str], can_fail: bool = True) -> Iterator[URL]:
    """Create the databases ``names`` on the server at ``PG_ADMIN_URL`` and yield the server's
    URL; the databases are dropped after. Skips (or fails) as :func:`pg_admin_engine` does."""
    admin = pg_admin_engine(can_fail)
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL)
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a PostgreSQL database of this test session (created here, dropped after)."""
    name = f"tgp_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with temporary_pg_databases([name]) as server:
        yield server.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _pg_session_engine(pg_server_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def unmigrated_db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """URL of a fresh, empty database (no tables), on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield URL.create("sqlite", database=str(tmp_path / "tgp-runs.sqlite")).render_as_string()
        return
    server_url = request.getfixturevalue("pg_server_url")
    admin: Engine = request.getfixturevalue("_pg_session_engine")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    try:
        with admin.connect() as conn:
            conn.execute(text("SET lock_timeout = '5s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    except SQLAlchemyError:
        pass  # a test left a connection holding locks; the database is dropped at the end


@pytest.fixture
def db_url(unmigrated_db_url: str) -> str:
    """URL of a fresh database migrated to the latest schema (SQLite and PostgreSQL)."""
    upgrade(unmigrated_db_url)
    return unmigrated_db_url


@pytest.fixture
def rundb(db_url: str) -> Iterator[RunDB]:
    """A :class:`tgpcore.rundb.RunDB` on :func:`db_url`."""
    engine = open_db(db_url)
    yield RunDB(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect server (and SQLite API database) for one test module's flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
