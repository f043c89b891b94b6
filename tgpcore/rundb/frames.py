"""A run's inventoried frames and its calibration plan."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from tgpcore.rundb.models import (
    FRAME_KINDS,
    FRAME_STATUSES,
    MASTER_KINDS,
    PLAN_STATUSES,
    Frame,
    PlanEntry,
    PlanMaster,
)
from tgpcore.rundb.store import Store, check, check_columns, chunks, upsert

_FRAME_COLUMNS = frozenset(c.key for c in Frame.__table__.columns) - {"id", "run_id"}
_MASTER_COLUMNS = frozenset(c.key for c in PlanMaster.__table__.columns) - {"id", "run_id"}
_ENTRY_COLUMNS = (frozenset(c.key for c in PlanEntry.__table__.columns)
                  - {"id", "run_id", "frame_id"}) | {"path"}


def frame_ids(s: Session, run_id: str, paths: Sequence[str]) -> dict[str, int]:
    """Ids of a run's frames by path (paths not in the run are left out)."""
    ids: dict[str, int] = {}
    for chunk in chunks(list(dict.fromkeys(paths))):
        stmt = select(Frame.path, Frame.id).where(Frame.run_id == run_id,
                                                  Frame.path.in_(chunk))
        ids.update({p: i for p, i in s.execute(stmt)})
    return ids


class FrameStore(Store):
    """The frames the inventory found, accepted or rejected."""

    def upsert_frames(self, run_id: str, records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Insert or update a run's frames, keyed by ``path``.

        Parameters
        ----------
        run_id : str
        records : sequence of mapping
            Keys are :class:`~tgpcore.rundb.models.Frame` column names; ``path`` is required.
            An existing frame gets the values given; columns not given keep their value.

        Returns
        -------
        dict of str to int
            Frame id of every path given.
        """
        rows: list[dict[str, Any]] = []
        for rec in records:
            check_columns(rec, _FRAME_COLUMNS, "frame")
            if not rec.get("path"):
                raise ValueError("every frame record needs a 'path'")
            row = dict(rec, path=os.fspath(rec["path"]), run_id=run_id)
            if "kind" in row:
                check(row["kind"], FRAME_KINDS, "frame kind")
            if "status" in row:
                check(row["status"], FRAME_STATUSES, "frame status")
            rows.append(row)
        if not rows:
            return {}
        with self._session() as s:
            upsert(s, Frame, rows, ("run_id", "path"))
            return frame_ids(s, run_id, [r["path"] for r in rows])

    def frames(self, run_id: str, kind: str | None = None,
               status: str | None = None) -> list[Frame]:
        """Return a run's frames, optionally of one kind and status, ordered by path."""
        stmt = select(Frame).where(Frame.run_id == run_id).order_by(Frame.path)
        if kind is not None:
            stmt = stmt.where(Frame.kind == kind)
        if status is not None:
            stmt = stmt.where(Frame.status == status)
        with self._session() as s:
            return list(s.scalars(stmt))

    def frame_counts(self, run_id: str) -> dict[str, Any]:
        """A run's frames counted: ``total``, ``by_kind``, ``by_status`` and
        ``by_kind_status`` (as ``{"science/accepted": n}``)."""
        with self._session() as s:
            rows = s.execute(
                select(Frame.kind, Frame.status, func.count()).where(Frame.run_id == run_id)
                .group_by(Frame.kind, Frame.status)).all()
        by_kind: Counter[str] = Counter()
        by_status: Counter[str] = Counter()
        by_kind_status: dict[str, int] = {}
        for kind, status, n in rows:
            by_kind[kind] += n
            by_status[status] += n
            by_kind_status[f"{kind}/{status}"] = n
        return {"total": sum(by_kind.values()), "by_kind": dict(by_kind),
                "by_status": dict(by_status), "by_kind_status": by_kind_status}


class PlanStore(Store):
    """A run's calibration plan: the masters it asks for and each frame's masters."""

    def replace_plan(self, run_id: str, masters: Sequence[Mapping[str, Any]],
                     entries: Sequence[Mapping[str, Any]]) -> None:
        """Store a run's calibration plan, replacing any previous one.

        Parameters
        ----------
        run_id : str
        masters : sequence of mapping
            :class:`~tgpcore.rundb.models.PlanMaster` fields (``key`` and ``kind`` required).
        entries : sequence of mapping
            :class:`~tgpcore.rundb.models.PlanEntry` fields, with the frame given by ``path``
            (a frame of this run). ``bias_key``/``dark_key``/``flat_key`` must name masters.

        Raises
        ------
        ValueError
            On an unknown field or status, a frame path not in the run, or a master key not
            among ``masters``.
        """
        master_rows = []
        for m in masters:
            check_columns(m, _MASTER_COLUMNS, "plan master")
            check(m.get("kind", ""), MASTER_KINDS, "master kind")
            if not m.get("key"):
                raise ValueError("every plan master needs a 'key'")
            master_rows.append({"members": [], "warnings": [], **m, "run_id": run_id})
        keys = {m["key"] for m in master_rows}
        for e in entries:
            check_columns(e, _ENTRY_COLUMNS, "plan entry")
            check(e.get("status", "ok"), PLAN_STATUSES, "plan entry status")
            for col in ("bias_key", "dark_key", "flat_key"):
                if e.get(col) is not None and e[col] not in keys:
                    raise ValueError(f"plan entry for {e.get('path')!r}: {col} {e[col]!r} "
                                     "is not among the plan's masters")
        with self._session() as s:
            self._serialise(s, f"plan:{run_id}")
            s.execute(delete(PlanEntry).where(PlanEntry.run_id == run_id))
            s.execute(delete(PlanMaster).where(PlanMaster.run_id == run_id))
            ids = frame_ids(s, run_id, [os.fspath(e["path"]) for e in entries])
            entry_rows = []
            for e in entries:
                path = os.fspath(e["path"])
                if path not in ids:
                    raise ValueError(f"plan entry for {path!r}: no such frame in run {run_id}")
                row = {k: v for k, v in e.items() if k != "path"}
                entry_rows.append({"warnings": [], "status": "ok", **row,
                                   "run_id": run_id, "frame_id": ids[path]})
            if master_rows:
                s.execute(insert(PlanMaster), master_rows)
            if entry_rows:
                s.execute(insert(PlanEntry), entry_rows)

    def plan(self, run_id: str) -> tuple[list[PlanMaster], list[tuple[str, PlanEntry]]]:
        """Return a run's plan: its masters by key, and (frame path, entry) pairs by path."""
        with self._session() as s:
            masters = list(s.scalars(select(PlanMaster).where(PlanMaster.run_id == run_id)
                                     .order_by(PlanMaster.key)))
            stmt = (select(Frame.path, PlanEntry).join(Frame, Frame.id == PlanEntry.frame_id)
                    .where(PlanEntry.run_id == run_id).order_by(Frame.path))
            return masters, [(p, e) for p, e in s.execute(stmt)]

    def plan_counts(self, run_id: str) -> dict[str, Any]:
        """The plan counted: ``masters`` (number) and ``entries`` (by status)."""
        with self._session() as s:
            entries = dict(s.execute(select(PlanEntry.status, func.count())
                                     .where(PlanEntry.run_id == run_id)
                                     .group_by(PlanEntry.status)).all())
            n_masters = s.scalar(select(func.count()).select_from(PlanMaster)
                                 .where(PlanMaster.run_id == run_id))
        return {"masters": n_masters or 0, "entries": entries}
