"""Alembic environment of the tgp run database.

Run programmatically by :func:`tgpcore.rundb.engine.upgrade`, which passes an open connection
in ``config.attributes["connection"]``. From the command line
(``alembic -c tgpcore/rundb/alembic.ini upgrade head``) the URL is ``sqlalchemy.url`` from the
configuration, or else :func:`tgpcore.rundb.engine.resolve_database_url`. Logging is left as
the caller configured it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from tgpcore.rundb.engine import _version_table_schema, make_engine, resolve_database_url
from tgpcore.rundb.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        version_table_schema=_version_table_schema(connection),
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    url = config.get_main_option("sqlalchemy.url") or resolve_database_url()
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on one opened here."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or resolve_database_url())
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
