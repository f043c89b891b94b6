"""The run database: SQLAlchemy models, engine and sessions, Alembic migrations, repository.

Typical use::

    from tgpcore.rundb import RunDB, open_db, resolve_database_url

    db = RunDB(open_db(resolve_database_url(out_root)))
    run_id = db.start_run(data_dir, out_root, "tgpsim", params, tgpcore.__version__)
"""

from tgpcore.rundb.engine import (
    DEFAULT_DB_NAME,
    ENV_VAR,
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    open_db,
    resolve_database_url,
    session_scope,
    upgrade,
)
from tgpcore.rundb.models import (
    Base,
    CacheEntry,
    Frame,
    Night,
    NightAttempt,
    PlanEntry,
    PlanMaster,
    Product,
    ProductLineage,
    QCMetric,
    Run,
    StageEvent,
)
from tgpcore.rundb.repository import RunDB

__all__ = [
    "DEFAULT_DB_NAME", "ENV_VAR", "Base", "CacheEntry", "Frame", "Night", "NightAttempt", "PlanEntry",
    "PlanMaster", "Product", "ProductLineage", "QCMetric", "Run", "RunDB", "StageEvent", "alembic_config",
    "current_revision", "downgrade", "head_revision", "make_engine", "open_db",
    "resolve_database_url", "session_scope", "upgrade",
]
