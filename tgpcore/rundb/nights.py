"""Night folders of an inbox, and claiming each for processing exactly once.

A scheduled deployment finds the night folders of an inbox (:func:`find_nights`), claims each
in the run database (:func:`claim_night`) and records how its run ended
(:func:`finish_night`). A claim is one short transaction, serialised per night (a PostgreSQL
advisory lock; SQLite's ``BEGIN IMMEDIATE``), so two schedulers that overlap never process
the same night, and a night marked done is never processed again.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text

from tgpcore.rundb.coltypes import utcnow
from tgpcore.rundb.engine import session_scope
from tgpcore.rundb.models import NIGHT_STATUSES, Night, NightAttempt
from tgpcore.rundb.store import Store, check, upsert

if TYPE_CHECKING:
    from tgpcore.rundb.repository import RunDB

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz")


@dataclass(frozen=True)
class NightFolder:
    """A night found in the inbox: its folder and the raw-data folder inside it."""

    path: Path
    data: Path


@dataclass(frozen=True)
class Claim:
    """A night claimed for processing: the night's row and this attempt's row."""

    night_id: int
    attempt_id: int
    path: str
    attempt: int  # 1 for the first try


def _has_fits(folder: Path) -> bool:
    for _root, _dirs, files in os.walk(folder):
        if any(f.lower().endswith(FITS_SUFFIXES) for f in files):
            return True
    return False


def _newest_mtime(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            try:
                newest = max(newest, os.stat(os.path.join(root, name)).st_mtime)
            except OSError:
                continue
    return newest


def find_nights(inbox: str | os.PathLike, raw_subdir: str | None = "raw",
                min_age_s: float = 0.0, now: float | None = None) -> list[NightFolder]:
    """The night folders of an inbox, oldest name first.

    A night folder is a direct subfolder of ``inbox`` (hidden ones excepted) that holds FITS
    files. Its raw data is its ``raw_subdir`` subfolder when there is one, else the folder.

    Parameters
    ----------
    inbox : path-like
        The inbox folder.
    raw_subdir : str or None
        Name of the raw-data subfolder of a night, if the layout has one.
    min_age_s : float
        Leave out folders with anything modified less than this many seconds ago (a night
        still being copied in).
    now : float, optional
        The current time (``time.time()``), for tests.

    Returns
    -------
    list of NightFolder

    Raises
    ------
    FileNotFoundError
        If the inbox does not exist.
    """
    inbox = Path(inbox)
    if not inbox.is_dir():
        raise FileNotFoundError(f"inbox {inbox} does not exist or is not a folder")
    now = time.time() if now is None else now
    nights = []
    for folder in sorted(p for p in inbox.iterdir() if p.is_dir() and not p.name.startswith(".")):
        data = folder / raw_subdir if raw_subdir and (folder / raw_subdir).is_dir() else folder
        if not _has_fits(data):
            continue
        if min_age_s > 0 and now - _newest_mtime(folder) < min_age_s:
            continue
        nights.append(NightFolder(path=folder.resolve(), data=data.resolve()))
    return nights


def _lock(session, path: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                        {"name": f"tgp-night:{path}"})


def claim_night(db: RunDB | NightStore, path: str | os.PathLike, worker: str | None = None,
                retry_failed: bool = True, max_attempts: int = 3,
                stale_after_s: float = 12 * 3600.0) -> Claim | None:
    """Claim a night for processing, or return None if it must not be processed now.

    A night is claimed when it was never seen; when its last attempt failed, ``retry_failed``
    is set and it has had fewer than ``max_attempts`` attempts; or when it has been
    ``running`` for more than ``stale_after_s`` (a worker that was killed). A night that is
    done is never claimed again.

    Parameters
    ----------
    db : RunDB
        The run database.
    path : path-like
        The night folder (stored as given; pass a resolved path).
    worker : str, optional
        Who claims it (e.g. a Prefect flow-run id or host:pid), recorded with the attempt.
    retry_failed : bool
        Whether a failed night is tried again.
    max_attempts : int
        Attempts after which a failing night is left alone.
    stale_after_s : float
        Age after which a ``running`` claim is taken to be dead.

    Returns
    -------
    Claim or None
    """
    path = os.fspath(path)
    now = utcnow()
    with session_scope(db.engine) as s:
        _lock(s, path)
        night = s.scalars(select(Night).where(Night.path == path)).first()
        if night is None:
            night = Night(path=path, status="running", processed_at=now)
            s.add(night)
            s.flush()
            attempts = 0
        else:
            attempts = s.scalar(select(func.count()).select_from(NightAttempt)
                                .where(NightAttempt.night_id == night.id)) or 0
            if night.status == "done":
                return None
            if night.status == "failed" and (not retry_failed or attempts >= max_attempts):
                return None
            if night.status == "running":
                since = night.processed_at or now
                if (now - since) < dt.timedelta(seconds=stale_after_s):
                    return None
                stale = s.scalars(select(NightAttempt).where(
                    NightAttempt.night_id == night.id, NightAttempt.status == "running")).all()
                for a in stale:
                    a.status, a.finished_at = "failed", now
                    a.message = f"abandoned: still running after {stale_after_s:.0f} s"
            night.status, night.processed_at = "running", now
        attempt = NightAttempt(night_id=night.id, worker=worker, started_at=now,
                               status="running")
        s.add(attempt)
        s.flush()
        return Claim(night_id=night.id, attempt_id=attempt.id, path=path, attempt=attempts + 1)


def finish_night(db: RunDB | NightStore, claim: Claim, status: str, run_id: str | None = None,
                 message: str | None = None) -> None:
    """Record how a claimed night's attempt ended (``'done'`` or ``'failed'``).

    Parameters
    ----------
    db : RunDB
    claim : Claim
        From :func:`claim_night`.
    status : {'done', 'failed'}
    run_id : str, optional
        The run that processed it.
    message : str, optional
        Why it failed, for instance.
    """
    if status not in ("done", "failed"):
        raise ValueError(f"night status must be 'done' or 'failed'; got {status!r}")
    now = utcnow()
    with session_scope(db.engine) as s:
        _lock(s, claim.path)
        night = s.get(Night, claim.night_id)
        attempt = s.get(NightAttempt, claim.attempt_id)
        if night is None or attempt is None:
            raise KeyError(f"no claim {claim}")
        night.status, night.processed_at = status, now
        if run_id is not None:
            night.run_id = run_id
        attempt.status, attempt.finished_at, attempt.message = status, now, message
        attempt.run_id = run_id


def night_attempts(db: RunDB | NightStore, path: str | os.PathLike) -> list[NightAttempt]:
    """The attempts at a night, oldest first (detached objects)."""
    with session_scope(db.engine) as s:
        return list(s.scalars(select(NightAttempt).join(Night, Night.id == NightAttempt.night_id)
                              .where(Night.path == os.fspath(path))
                              .order_by(NightAttempt.id)))


class NightStore(Store):
    """Night folders a scheduled deployment has seen, and its attempts at each."""

    def night_status(self, path: str | os.PathLike) -> str | None:
        """Return the recorded status of a night directory, or ``None`` if never seen."""
        with self._session() as s:
            return s.scalar(select(Night.status).where(Night.path == os.fspath(path)))

    def mark_night(self, path: str | os.PathLike, status: str, run_id: str | None = None) -> None:
        """Record a night's status (``'done'``, ``'failed'`` or ``'running'``); idempotent.

        ``run_id=None`` keeps the run recorded earlier for that night, if any.
        """
        check(status, NIGHT_STATUSES, "night status")
        row = {"path": os.fspath(path), "status": status, "processed_at": utcnow()}
        if run_id is not None:
            row["run_id"] = run_id
        with self._session() as s:
            upsert(s, Night, [row], ("path",))

    def claim_night(self, path: str | os.PathLike, **kwargs: Any) -> Claim | None:
        """:func:`claim_night` on this database."""
        return claim_night(self, path, **kwargs)

    def finish_night(self, claim: Claim, status: str, run_id: str | None = None,
                     message: str | None = None) -> None:
        """:func:`finish_night` on this database."""
        finish_night(self, claim, status, run_id=run_id, message=message)

    def night_attempts(self, path: str | os.PathLike) -> list[NightAttempt]:
        """:func:`night_attempts` on this database."""
        return night_attempts(self, path)
