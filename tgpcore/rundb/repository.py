"""The run database as the flows use it: small, idempotent writes and plain reads.

Every method opens and closes its own short transaction. Objects returned are detached with
their attributes loaded, so they can be used after the call.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from tgpcore.io.checksum import sha256_file
from tgpcore.rundb.coltypes import utcnow
from tgpcore.rundb.engine import session_scope
from tgpcore.rundb.models import (
    ALARM_LEVELS,
    FRAME_KINDS,
    FRAME_STATUSES,
    MASTER_KINDS,
    NIGHT_STATUSES,
    PLAN_STATUSES,
    PRODUCT_STATUSES,
    RUN_STATUSES,
    STAGE_STATUSES,
    AlarmRecord,
    Base,
    CacheEntry,
    Frame,
    Night,
    PlanEntry,
    PlanMaster,
    Product,
    QCMetric,
    Run,
    StageEvent,
)

_CHUNK = 500  # rows per IN (...) list; well below SQLite's bound-parameter limit
_FRAME_COLUMNS = frozenset(c.key for c in Frame.__table__.columns) - {"id", "run_id"}
_MASTER_COLUMNS = frozenset(c.key for c in PlanMaster.__table__.columns) - {"id", "run_id"}
_ENTRY_COLUMNS = (frozenset(c.key for c in PlanEntry.__table__.columns)
                  - {"id", "run_id", "frame_id"}) | {"path"}


def _check(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def _check_columns(record: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = set(record) - allowed
    if unknown:
        raise ValueError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _as_dict(obj: Base) -> dict[str, Any]:
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns}


class RunDB:
    """Repository over the run database.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        An engine on a migrated database, e.g. from :func:`tgpcore.rundb.open_db`.

    Examples
    --------
    >>> db = RunDB(open_db("sqlite:////tmp/out/tgp-runs.sqlite"))      # doctest: +SKIP
    >>> run_id = db.start_run("/data/night", "/tmp/out", "tgpsim", {}, "0.1.0")  # doctest: +SKIP
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self) -> AbstractContextManager[Session]:
        return session_scope(self.engine)

    def _serialise(self, session: Session, name: str) -> None:
        """Make concurrent read-then-write sections on ``name`` run one at a time.

        On PostgreSQL this takes a transaction-level advisory lock; SQLite transactions are
        already serialised by ``BEGIN IMMEDIATE`` (see :func:`tgpcore.rundb.make_engine`).
        """
        if self.engine.dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                            {"name": f"tgp-rundb:{name}"})

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
        _check(status, RUN_STATUSES, "run status")
        with self._session() as s:
            n = s.execute(update(Run).where(Run.id == run_id).values(
                status=status, message=message, finished_at=utcnow())).rowcount
            if n == 0:
                raise KeyError(f"no run {run_id!r}")

    def get_run(self, run_id: str) -> Run | None:
        """Return the run, detached, or ``None``."""
        with self._session() as s:
            return s.get(Run, run_id)

    def list_runs(self, limit: int = 20) -> list[Run]:
        """Return the latest runs, newest first (detached objects)."""
        with self._session() as s:
            stmt = select(Run).order_by(Run.created_at.desc(), Run.id).limit(limit)
            return list(s.scalars(stmt))

    # frames ---------------------------------------------------------------------------------

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
            _check_columns(rec, _FRAME_COLUMNS, "frame")
            if not rec.get("path"):
                raise ValueError("every frame record needs a 'path'")
            row = dict(rec, path=os.fspath(rec["path"]), run_id=run_id)
            if "kind" in row:
                _check(row["kind"], FRAME_KINDS, "frame kind")
            if "status" in row:
                _check(row["status"], FRAME_STATUSES, "frame status")
            rows.append(row)
        if not rows:
            return {}
        with self._session() as s:
            _upsert(s, Frame, rows, ("run_id", "path"))
            return self._frame_ids(s, run_id, [r["path"] for r in rows])

    def _frame_ids(self, s: Session, run_id: str, paths: Sequence[str]) -> dict[str, int]:
        ids: dict[str, int] = {}
        for chunk in _chunks(list(dict.fromkeys(paths))):
            stmt = select(Frame.path, Frame.id).where(Frame.run_id == run_id,
                                                      Frame.path.in_(chunk))
            ids.update({p: i for p, i in s.execute(stmt)})
        return ids

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

    # calibration plan -----------------------------------------------------------------------

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
            _check_columns(m, _MASTER_COLUMNS, "plan master")
            _check(m.get("kind", ""), MASTER_KINDS, "master kind")
            if not m.get("key"):
                raise ValueError("every plan master needs a 'key'")
            master_rows.append({"members": [], "warnings": [], **m, "run_id": run_id})
        keys = {m["key"] for m in master_rows}
        for e in entries:
            _check_columns(e, _ENTRY_COLUMNS, "plan entry")
            _check(e.get("status", "ok"), PLAN_STATUSES, "plan entry status")
            for col in ("bias_key", "dark_key", "flat_key"):
                if e.get(col) is not None and e[col] not in keys:
                    raise ValueError(f"plan entry for {e.get('path')!r}: {col} {e[col]!r} "
                                     "is not among the plan's masters")
        with self._session() as s:
            self._serialise(s, f"plan:{run_id}")
            s.execute(delete(PlanEntry).where(PlanEntry.run_id == run_id))
            s.execute(delete(PlanMaster).where(PlanMaster.run_id == run_id))
            ids = self._frame_ids(s, run_id, [os.fspath(e["path"]) for e in entries])
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
        _check(status, STAGE_STATUSES, "stage status")
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

    # products -------------------------------------------------------------------------------

    def record_product(self, run_id: str, kind: str, key: str, path: str | os.PathLike | None,
                       checksum: str | None, input_checksums: Mapping[str, Any] | None,
                       params: Mapping[str, Any] | None, software_version: str | None,
                       status: str = "ok") -> int:
        """Record a product; recording the same key again in a run updates its row.

        Parameters
        ----------
        run_id : str
        kind : str
            E.g. ``'master_bias'``, ``'calibrated'``, ``'stack'``.
        key : str
            Cache key: a digest of kind, input checksums, parameters and software version.
        path : path-like or None
            The product file (absolute paths let later runs find it from anywhere).
        checksum : str or None
            SHA-256 of the product file.
        input_checksums, params : mapping or None
        software_version : str or None
        status : {'ok', 'failed'}

        Returns
        -------
        int
            The product id.
        """
        _check(status, PRODUCT_STATUSES, "product status")
        path_s = os.fspath(path) if path is not None else None
        size = None
        if path_s is not None and status == "ok":
            try:
                size = os.stat(path_s).st_size
            except FileNotFoundError:
                size = None
        values = {
            "kind": kind, "path": path_s, "checksum": checksum, "size_bytes": size,
            "input_checksums": dict(input_checksums) if input_checksums is not None else None,
            "params": dict(params) if params is not None else None,
            "software_version": software_version, "status": status, "created_at": utcnow(),
        }
        with self._session() as s:
            self._serialise(s, f"product:{run_id}:{key}")
            product = s.scalars(select(Product).where(Product.run_id == run_id,
                                                      Product.key == key)).first()
            if product is None:
                product = Product(run_id=run_id, key=key, **values)
                s.add(product)
            else:
                for name, value in values.items():
                    setattr(product, name, value)
            s.flush()
            return product.id

    def find_product(self, key: str) -> Product | None:
        """Return the latest ``ok`` product with this key, from any run, still on disk.

        A product counts as still there when its file exists with the recorded size; the
        checksum is not recomputed (see :meth:`verify_product`).
        """
        stmt = (select(Product).where(Product.key == key, Product.status == "ok")
                .order_by(Product.created_at.desc(), Product.id.desc()))
        with self._session() as s:
            candidates = list(s.scalars(stmt))
        for product in candidates:
            if product.path is None:
                continue
            try:
                size = os.stat(product.path).st_size
            except OSError:
                continue
            if product.size_bytes is None or size == product.size_bytes:
                return product
        return None

    def refresh_product(self, key: str, path: str | os.PathLike) -> int:
        """Record the new checksum and size of a product file changed in place on purpose
        (a WCS written into a stack), on every ``ok`` row of ``key`` that points at it, so
        that later runs still find and trust it. Returns the number of rows updated."""
        path_s = os.fspath(path)
        checksum, size = sha256_file(path_s), os.stat(path_s).st_size
        with self._session() as s:
            rows = list(s.scalars(select(Product).where(Product.key == key,
                                                        Product.path == path_s,
                                                        Product.status == "ok")))
            for product in rows:
                product.checksum, product.size_bytes = checksum, size
            return len(rows)

    @staticmethod
    def verify_product(product: Product) -> bool:
        """Return whether the product file exists and its SHA-256 matches the recorded one."""
        if product.path is None or product.checksum is None or not Path(product.path).is_file():
            return False
        return sha256_file(product.path) == product.checksum

    def products(self, run_id: str, kind: str | None = None) -> list[Product]:
        """Return the products recorded by a run, optionally of one kind."""
        stmt = select(Product).where(Product.run_id == run_id).order_by(Product.id)
        if kind is not None:
            stmt = stmt.where(Product.kind == kind)
        with self._session() as s:
            return list(s.scalars(stmt))

    # QC -------------------------------------------------------------------------------------

    def add_qc(self, run_id: str, metrics: Mapping[str, float | None],
               frame_id: int | None = None, product_id: int | None = None,
               units: Mapping[str, str] | None = None) -> None:
        """Record QC figures of a run, or of one of its frames or products.

        Idempotent: a key already recorded for the same (run, frame, product) gets the new
        value. NaN is stored as NULL.

        Parameters
        ----------
        run_id : str
        metrics : mapping of str to float
        frame_id, product_id : int, optional
        units : mapping of str to str, optional
            Unit of some of the keys, e.g. ``{"fwhm": "arcsec"}``.
        """
        if not metrics:
            return
        units = units or {}
        scope = and_(QCMetric.run_id == run_id,
                     QCMetric.frame_id.is_(None) if frame_id is None
                     else QCMetric.frame_id == frame_id,
                     QCMetric.product_id.is_(None) if product_id is None
                     else QCMetric.product_id == product_id)
        rows = [{"run_id": run_id, "frame_id": frame_id, "product_id": product_id, "key": k,
                 "value": _finite(v), "unit": units.get(k)} for k, v in metrics.items()]
        with self._session() as s:
            self._serialise(s, f"qc:{run_id}")
            s.execute(delete(QCMetric).where(scope, QCMetric.key.in_(list(metrics))))
            s.execute(insert(QCMetric), rows)

    def qc(self, run_id: str, frame_id: int | None = None,
           product_id: int | None = None) -> dict[str, float | None]:
        """Return QC figures of a run (or of one frame or product) as ``{key: value}``."""
        stmt = select(QCMetric.key, QCMetric.value).where(QCMetric.run_id == run_id)
        stmt = stmt.where(QCMetric.frame_id.is_(None) if frame_id is None
                          else QCMetric.frame_id == frame_id)
        stmt = stmt.where(QCMetric.product_id.is_(None) if product_id is None
                          else QCMetric.product_id == product_id)
        with self._session() as s:
            return {k: v for k, v in s.execute(stmt.order_by(QCMetric.key))}

    # alarms ---------------------------------------------------------------------------------

    def add_alarms(self, run_id: str, alarms: Iterable[Any]) -> int:
        """Record alarms (:class:`tgpcore.qc.alarms.Alarm` or dicts with its fields) of a run.

        Returns the number recorded.
        """
        rows = []
        for a in alarms:
            d = a.to_dict() if hasattr(a, "to_dict") else dict(a)
            _check(d.get("level", "warning"), ALARM_LEVELS, "alarm level")
            rows.append({"run_id": run_id, "stage": d["stage"], "code": d["code"],
                         "level": d.get("level", "warning"), "subject": str(d["subject"]),
                         "value": _finite(d.get("value")),
                         "threshold": _finite(d.get("threshold")), "message": d["message"]})
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
            out = [_as_dict(r) for r in recs]
        for d in out:
            d["reason"] = AlarmThresholds.reasons.get(d["code"], "")
        return out

    # cache ----------------------------------------------------------------------------------

    def cache_get(self, key: str) -> bytes | None:
        """Return a cached response, or ``None`` if absent or expired."""
        with self._session() as s:
            entry = s.get(CacheEntry, key)
            if entry is None:
                return None
            if entry.expires_at is not None and entry.expires_at <= utcnow():
                return None
            return entry.response

    def cache_put(self, key: str, service: str, request: Mapping[str, Any] | None,
                  response: bytes, content_type: str | None = None,
                  ttl_s: float | None = None) -> None:
        """Store (or replace) a cached response.

        Parameters
        ----------
        key : str
            SHA-256 hex of the request.
        service : str
            E.g. ``'gaia'``, ``'vizier'``, ``'nova'``.
        request : mapping or None
            The request, for humans (JSON; no secrets).
        response : bytes
        content_type : str, optional
        ttl_s : float, optional
            Lifetime in seconds; never expires by default.
        """
        now = utcnow()
        row = {"key": key, "service": service,
               "request": dict(request) if request is not None else None,
               "response": bytes(response), "content_type": content_type, "created_at": now,
               "expires_at": now + dt.timedelta(seconds=ttl_s) if ttl_s is not None else None}
        with self._session() as s:
            _upsert(s, CacheEntry, [row], ("key",))

    def cache_purge(self) -> int:
        """Delete expired cache entries; return how many."""
        with self._session() as s:
            return s.execute(delete(CacheEntry).where(
                CacheEntry.expires_at.is_not(None), CacheEntry.expires_at <= utcnow())).rowcount

    # summary --------------------------------------------------------------------------------

    def run_summary(self, run_id: str) -> dict[str, Any]:
        """Summarise a run in plain values.

        Returns
        -------
        dict
            ``run`` (the run's columns), ``frames`` (``total``, ``by_kind``, ``by_status``,
            ``by_kind_status`` as ``{"science/accepted": n}``), ``plan`` (``masters``,
            ``entries`` by status), ``products`` (by status), ``qc`` (number of figures) and
            ``stages`` (list of events as dicts, in order).

        Raises
        ------
        KeyError
            If the run does not exist.
        """
        with self._session() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise KeyError(f"no run {run_id!r}")
            frame_counts = s.execute(
                select(Frame.kind, Frame.status, func.count()).where(Frame.run_id == run_id)
                .group_by(Frame.kind, Frame.status)).all()
            entries = dict(s.execute(select(PlanEntry.status, func.count())
                                     .where(PlanEntry.run_id == run_id)
                                     .group_by(PlanEntry.status)).all())
            n_masters = s.scalar(select(func.count()).select_from(PlanMaster)
                                 .where(PlanMaster.run_id == run_id))
            products = dict(s.execute(select(Product.status, func.count())
                                      .where(Product.run_id == run_id)
                                      .group_by(Product.status)).all())
            n_qc = s.scalar(select(func.count()).select_from(QCMetric)
                            .where(QCMetric.run_id == run_id))
            events = s.scalars(select(StageEvent).where(StageEvent.run_id == run_id)
                               .order_by(StageEvent.started_at, StageEvent.id)).all()
            by_kind: Counter[str] = Counter()
            by_status: Counter[str] = Counter()
            by_kind_status: dict[str, int] = {}
            for kind, status, n in frame_counts:
                by_kind[kind] += n
                by_status[status] += n
                by_kind_status[f"{kind}/{status}"] = n
            return {
                "run": _as_dict(run),
                "frames": {"total": sum(by_kind.values()), "by_kind": dict(by_kind),
                           "by_status": dict(by_status), "by_kind_status": by_kind_status},
                "plan": {"masters": n_masters or 0, "entries": entries},
                "products": products,
                "qc": n_qc or 0,
                "stages": [{k: v for k, v in _as_dict(e).items() if k != "run_id"}
                           for e in events],
            }

    # nights ---------------------------------------------------------------------------------

    def night_status(self, path: str | os.PathLike) -> str | None:
        """Return the recorded status of a night directory, or ``None`` if never seen."""
        with self._session() as s:
            return s.scalar(select(Night.status).where(Night.path == os.fspath(path)))

    def mark_night(self, path: str | os.PathLike, status: str, run_id: str | None = None) -> None:
        """Record a night's status (``'done'``, ``'failed'`` or ``'running'``); idempotent.

        ``run_id=None`` keeps the run recorded earlier for that night, if any.
        """
        _check(status, NIGHT_STATUSES, "night status")
        row = {"path": os.fspath(path), "status": status, "processed_at": utcnow()}
        if run_id is not None:
            row["run_id"] = run_id
        with self._session() as s:
            _upsert(s, Night, [row], ("path",))


def _upsert(session: Session, model: type[Base], rows: list[dict[str, Any]],
            index_elements: tuple[str, ...]) -> None:
    """Insert rows, or update the given columns of rows that exist (by a unique key).

    PostgreSQL and SQLite use ``INSERT ... ON CONFLICT DO UPDATE``; other databases a
    query followed by inserts and updates. Rows with the same set of keys go in one
    statement.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    table = model.__table__
    name = session.get_bind().dialect.name
    for cols, group in groups.items():
        # One lock order for every writer, so concurrent upserts of one run cannot deadlock.
        group.sort(key=lambda r: tuple(r[c] for c in index_elements))
        update_cols = [c for c in cols if c not in index_elements]
        if name in ("postgresql", "sqlite"):
            if name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            stmt = insert(table)
            if update_cols:
                stmt = stmt.on_conflict_do_update(
                    index_elements=list(index_elements),
                    set_={c: stmt.excluded[c] for c in update_cols})
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=list(index_elements))
            session.execute(stmt, group)
            continue
        for row in group:
            where = [table.c[c] == row[c] for c in index_elements]
            exists = session.execute(select(*[table.c[c] for c in index_elements])
                                     .where(*where)).first()
            if exists is None:
                session.execute(table.insert(), [row])
            elif update_cols:
                session.execute(table.update().where(*where)
                                .values({c: row[c] for c in update_cols}))
