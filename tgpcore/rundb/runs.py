"""Runs and what happens in them: start and end, stage events, alarms."""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import insert, select, update

from tgpcore.rundb.coltypes import utcnow
from tgpcore.rundb.models import (
    ALARM_LEVELS,
    RUN_STATUSES,
    STAGE_STATUSES,
    AlarmRecord,
    Run,
    StageEvent,
)
from tgpcore.rundb.store import Store, as_dict, check, finite

#: Seconds between a running run's heartbeats, and after which a silent one is abandoned.
HEARTBEAT_INTERVAL_S = 30.0
HEARTBEAT_STALE_S = 300.0


def _pid_alive(pid: int) -> bool:
    """Whether a process of this host is alive (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class RunStore(Store):
    """Runs, their stage events and their alarms."""

    # runs -----------------------------------------------------------------------------------

    def start_run(self, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                  profile: str | None, params: Mapping[str, Any] | None,
                  software_version: str | None, run_id: str | None = None) -> str:
        """Record that a run starts, or restarts (resumes) an existing one.

        Parameters
        ----------
        data_dir, out_dir : path-like
            The raw night read and the run's output folder.
        profile : str or None
            Instrument profile name.
        params : mapping or None
            The run's parameters (JSON).
        software_version : str or None
            Version of tgp that runs.
        run_id : str, optional
            Id to use (32 hex digits by convention). A new uuid4 hex by default. If the run
            exists, it is set running again with these values and its ``created_at`` kept.

        Returns
        -------
        str
            The run id.
        """
        run_id = run_id or uuid.uuid4().hex
        now = utcnow()
        values = {
            "data_dir": os.fspath(data_dir), "out_dir": os.fspath(out_dir), "profile": profile,
            "params": dict(params) if params is not None else None,
            "software_version": software_version, "status": "running",
            "started_at": now, "finished_at": None, "message": None,
            "heartbeat_at": now, "pid": os.getpid(), "host": socket.gethostname()[:255],
        }
        with self._session() as s:
            self._serialise(s, f"run:{run_id}")
            run = s.get(Run, run_id)
            if run is None:
                s.add(Run(id=run_id, created_at=now, **values))
            else:
                for name, value in values.items():
                    setattr(run, name, value)
        return run_id

    def finish_run(self, run_id: str, status: str, message: str | None = None) -> None:
        """Record how a run ended.

        Parameters
        ----------
        run_id : str
        status : {'succeeded', 'failed', 'partial', 'running'}
        message : str, optional
        """
        check(status, RUN_STATUSES, "run status")
        with self._session() as s:
            n = s.execute(update(Run).where(Run.id == run_id).values(
                status=status, message=message, finished_at=utcnow())).rowcount
            if n == 0:
                raise KeyError(f"no run {run_id!r}")

    def beat(self, run_id: str) -> bool:
        """Record that a running run is alive; False once it is no longer running."""
        with self._session() as s:
            n = s.execute(update(Run).where(Run.id == run_id, Run.status == "running")
                          .values(heartbeat_at=utcnow())).rowcount
        return bool(n)

    def is_abandoned(self, run: Run, stale_after_s: float = HEARTBEAT_STALE_S,
                     now: dt.datetime | None = None) -> bool:
        """Whether a run recorded as running was abandoned: its process on this host is
        gone, or (on another host) its heartbeat stopped ``stale_after_s`` ago."""
        if run.status != "running":
            return False
        if run.host == socket.gethostname() and run.pid:
            return not _pid_alive(run.pid)
        last = run.heartbeat_at or run.started_at or run.created_at
        now = now or utcnow()
        return last is None or (now - last).total_seconds() > stale_after_s

    def close_abandoned_runs(self, out_dir_prefix: str | os.PathLike | None = None,
                             stale_after_s: float = HEARTBEAT_STALE_S) -> list[str]:
        """Mark ``abandoned`` the runs recorded as running whose process is gone (under
        ``out_dir_prefix`` only, if given); return their ids."""
        prefix = os.fspath(out_dir_prefix) if out_dir_prefix is not None else None
        with self._session() as s:
            running = list(s.scalars(select(Run).where(Run.status == "running")))
        closed = []
        for run in running:
            if prefix and not (run.out_dir or "").startswith(prefix):
                continue
            if self.is_abandoned(run, stale_after_s):
                last = run.heartbeat_at or run.started_at
                with self._session() as s:
                    s.execute(update(Run).where(Run.id == run.id, Run.status == "running")
                              .values(status="abandoned", finished_at=utcnow(), message=(
                                  f"abandoned: its process ({run.host}:{run.pid}) stopped "
                                  f"without finishing; last heartbeat {last:%Y-%m-%d %H:%M:%S}"
                                  " UTC" if last else "abandoned: its process stopped")))
                closed.append(run.id)
        return closed

    def get_run(self, run_id: str) -> Run | None:
        """Return the run, detached, or ``None``."""
        with self._session() as s:
            return s.get(Run, run_id)

    def list_runs(self, limit: int = 20) -> list[Run]:
        """Return the latest runs, newest first (detached objects)."""
        with self._session() as s:
            stmt = select(Run).order_by(Run.created_at.desc(), Run.id).limit(limit)
            return list(s.scalars(stmt))

    # stages ---------------------------------------------------------------------------------

    def stage_started(self, run_id: str, stage: str) -> int:
        """Record that a stage starts; return the event id for :meth:`stage_finished`."""
        with self._session() as s:
            event = StageEvent(run_id=run_id, stage=stage, status="running", started_at=utcnow())
            s.add(event)
            s.flush()
            return event.id

    def stage_finished(self, event_id: int, status: str,
                       counters: Mapping[str, Any] | None = None,
                       message: str | None = None) -> None:
        """Record how a stage ended.

        Parameters
        ----------
        event_id : int
            From :meth:`stage_started`.
        status : {'succeeded', 'failed', 'skipped', 'not_built', 'running'}
        counters : mapping, optional
            Small JSON summary, e.g. ``{"calibrated": 37, "skipped": 3}``.
        message : str, optional
        """
        check(status, STAGE_STATUSES, "stage status")
        values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "message": message}
        if counters is not None:
            values["counters"] = dict(counters)
        with self._session() as s:
            n = s.execute(update(StageEvent).where(StageEvent.id == event_id)
                          .values(**values)).rowcount
            if n == 0:
                raise KeyError(f"no stage event {event_id}")

    def stage_not_built(self, run_id: str, stage: str, message: str) -> int:
        """Record that a stage is not built yet (one event per run and stage; idempotent)."""
        now = utcnow()
        with self._session() as s:
            self._serialise(s, f"stage:{run_id}:{stage}")
            event = s.scalars(select(StageEvent).where(
                StageEvent.run_id == run_id, StageEvent.stage == stage,
                StageEvent.status == "not_built")).first()
            if event is None:
                event = StageEvent(run_id=run_id, stage=stage, status="not_built")
                s.add(event)
            event.started_at = event.finished_at = now
            event.message = message
            s.flush()
            return event.id

    def stage_events(self, run_id: str) -> list[StageEvent]:
        """Return a run's stage events in the order they started."""
        with self._session() as s:
            return list(s.scalars(select(StageEvent).where(StageEvent.run_id == run_id)
                                  .order_by(StageEvent.started_at, StageEvent.id)))

    # alarms ---------------------------------------------------------------------------------

    def add_alarms(self, run_id: str, alarms: Iterable[Any]) -> int:
        """Record alarms (:class:`tgpcore.qc.alarms.Alarm` or dicts with its fields) of a run.

        Returns the number recorded.
        """
        rows = []
        for a in alarms:
            d = a.to_dict() if hasattr(a, "to_dict") else dict(a)
            check(d.get("level", "warning"), ALARM_LEVELS, "alarm level")
            rows.append({"run_id": run_id, "stage": d["stage"], "code": d["code"],
                         "level": d.get("level", "warning"), "subject": str(d["subject"]),
                         "value": finite(d.get("value")),
                         "threshold": finite(d.get("threshold")), "message": d["message"]})
        if rows:
            with self._session() as s:
                s.execute(insert(AlarmRecord), rows)
        return len(rows)

    def alarms(self, run_id: str) -> list[dict[str, Any]]:
        """The alarms of a run, oldest first, as dicts (with each alarm's reason)."""
        from tgpcore.qc.alarms import AlarmThresholds

        with self._session() as s:
            recs = list(s.scalars(select(AlarmRecord).where(AlarmRecord.run_id == run_id)
                                  .order_by(AlarmRecord.id)))
            out = [as_dict(r) for r in recs]
        for d in out:
            d["reason"] = AlarmThresholds.reasons.get(d["code"], "")
        return out
