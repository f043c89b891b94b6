"""Quality-control figures of a run, of its frames and of its products."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import and_, delete, func, insert, select

from tgpcore.rundb.models import Frame, QCMetric
from tgpcore.rundb.store import Store, finite


class QCStore(Store):
    """QC figures, one value per (run, frame, product, key)."""

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
                 "value": finite(v), "unit": units.get(k)} for k, v in metrics.items()]
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

    def qc_count(self, run_id: str) -> int:
        """How many QC figures a run has recorded (of the run, its frames and products)."""
        with self._session() as s:
            return s.scalar(select(func.count()).select_from(QCMetric)
                            .where(QCMetric.run_id == run_id)) or 0

    def product_qc(self, run_id: str) -> dict[int, dict[str, float | None]]:
        """QC figures of a run's products (not per-frame ones), by product id."""
        stmt = (select(QCMetric.product_id, QCMetric.key, QCMetric.value)
                .where(QCMetric.run_id == run_id, QCMetric.product_id.is_not(None),
                       QCMetric.frame_id.is_(None)).order_by(QCMetric.key))
        out: dict[int, dict[str, float | None]] = {}
        with self._session() as s:
            for pid, key, value in s.execute(stmt):
                out.setdefault(pid, {})[key] = value
        return out

    def frame_qc(self, run_id: str) -> list[tuple[Frame, dict[str, float | None]]]:
        """Each frame of a run that has QC figures, with its figures, ordered by path."""
        stmt = (select(Frame, QCMetric.key, QCMetric.value)
                .join(QCMetric, QCMetric.frame_id == Frame.id)
                .where(QCMetric.run_id == run_id).order_by(Frame.path, QCMetric.key))
        out: dict[int, tuple[Frame, dict[str, float | None]]] = {}
        with self._session() as s:
            for frame, key, value in s.execute(stmt):
                out.setdefault(frame.id, (frame, {}))[1][key] = value
        return list(out.values())
