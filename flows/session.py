"""What every stage flow shares: the run database, the run id, the run's output folder."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from flows.console import attach_run_log
from flows.runner import error_text
from tgpcore import __version__
from tgpcore.io.atomic import remove_stale_temporaries
from tgpcore.rundb.engine import open_db, resolve_database_url
from tgpcore.rundb.heartbeat import Heartbeat
from tgpcore.rundb.repository import RunDB


@lru_cache(maxsize=8)
def _db_for(url: str) -> RunDB:
    return RunDB(open_db(url))


def run_database(out_root: str | Path) -> tuple[RunDB, str]:
    """The run database for an output root (``TGP_DATABASE_URL`` wins), and its URL."""
    url = resolve_database_url(out_root)
    return _db_for(url), url


def new_run_id() -> str:
    """A sortable, readable run id: UTC time plus a random suffix."""
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{now}-{uuid.uuid4().hex[:6]}"


@dataclass
class RunSession:
    """One run: its id, database and output folder (``<out>/<run-id>``)."""

    run_id: str
    db: RunDB
    db_url: str
    out_root: Path
    heartbeat: Any = None

    @property
    def run_dir(self) -> Path:
        """The run's own product folder."""
        return self.out_root / self.run_id


def open_session(data_dir: str | Path, out_root: str | Path, profile: str | None,
                 params: dict[str, Any], run_id: str | None = None) -> RunSession:
    """Open (or continue, if ``run_id`` is given) a run in the database.

    Temporary files that killed writers left under the output root more than a day ago are
    deleted first (younger ones may belong to a run still at work).
    """
    out_root = Path(out_root).resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_temporaries(out_root)
    if stale:
        logging.getLogger("tgp").warning(
            "removed %d stale temporary file(s) left by killed writers under %s, e.g. %s",
            len(stale), out_root, stale[0])
    db, url = run_database(out_root)
    for closed in db.close_abandoned_runs(str(out_root)):
        logging.getLogger("tgp").warning("run %s was abandoned (its process stopped without "
                                         "finishing): closed as abandoned", closed)
    run_id = run_id or new_run_id()
    db.start_run(data_dir=str(Path(data_dir).resolve()), out_dir=str(out_root / run_id),
                 profile=profile or "auto", params=params, software_version=__version__,
                 run_id=run_id)
    (out_root / run_id).mkdir(parents=True, exist_ok=True)
    attach_run_log(out_root / run_id)
    return RunSession(run_id=run_id, db=db, db_url=url, out_root=out_root,
                      heartbeat=Heartbeat(db, run_id).start())


@contextlib.contextmanager
def closing_failed_run(session: RunSession, with_type: bool = False) -> Iterator[None]:
    """Close the run as failed (with the exception's message, prefixed by its type if
    ``with_type``) when the block raises anything, then re-raise."""
    try:
        yield
    except BaseException as exc:
        message = error_text(exc) if with_type else str(exc)
        session.db.finish_run(session.run_id, "failed", message=message)
        raise


def raise_alarms(session: RunSession, alarms: list[Any]) -> list[Any]:
    """Record alarms (:class:`tgpcore.qc.alarms.Alarm`) in the run database and log each one
    as a warning; returns them."""
    if not alarms:
        return alarms
    session.db.add_alarms(session.run_id, alarms)
    log = logging.getLogger("tgp.alarms")
    try:
        from prefect import get_run_logger

        log = get_run_logger()
    except Exception:  # noqa: BLE001 - outside a flow run: the plain logger
        pass
    for a in alarms:
        log.warning("ALARM %s (%s)", a.line(), a.reason)
    return alarms
