"""The run database as the flows use it: one object over the stores of each concern.

:class:`RunDB` composes the small stores, each over the same engine:

=====================  ==========================================================
``db.run_store``       runs, stage events, alarms (:mod:`tgpcore.rundb.runs`)
``db.product_store``   products and their lineage (:mod:`tgpcore.rundb.products`)
``db.http_cache``      cached network answers (:mod:`tgpcore.rundb.cache`)
``db.night_store``     nights of an inbox (:mod:`tgpcore.rundb.nights`)
``db.frame_store``     inventoried frames (:mod:`tgpcore.rundb.frames`)
``db.plan_store``      the calibration plan (:mod:`tgpcore.rundb.frames`)
``db.qc_store``        QC figures (:mod:`tgpcore.rundb.qc`)
=====================  ==========================================================

and offers each store's methods under its own name (``db.start_run`` is
``db.run_store.start_run``), so callers need not know which store holds what.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from tgpcore.rundb.cache import HttpCache
from tgpcore.rundb.frames import FrameStore, PlanStore
from tgpcore.rundb.nights import NightStore
from tgpcore.rundb.products import ProductStore
from tgpcore.rundb.qc import QCStore
from tgpcore.rundb.runs import RunStore
from tgpcore.rundb.store import as_dict


class _Delegate:
    """A method of :class:`RunDB` that is a method of one of its stores."""

    def __init__(self, store: str, cls: type) -> None:
        self.store, self.cls = store, cls

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.__doc__ = getattr(self.cls, name).__doc__

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return getattr(self.cls, self.name)
        return getattr(getattr(obj, self.store), self.name)


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
        self.run_store = RunStore(engine)
        self.product_store = ProductStore(engine)
        self.http_cache = HttpCache(engine)
        self.night_store = NightStore(engine)
        self.frame_store = FrameStore(engine)
        self.plan_store = PlanStore(engine)
        self.qc_store = QCStore(engine)

    # runs, stages, alarms
    start_run = _Delegate("run_store", RunStore)
    finish_run = _Delegate("run_store", RunStore)
    get_run = _Delegate("run_store", RunStore)
    list_runs = _Delegate("run_store", RunStore)
    beat = _Delegate("run_store", RunStore)
    is_abandoned = _Delegate("run_store", RunStore)
    close_abandoned_runs = _Delegate("run_store", RunStore)
    stage_started = _Delegate("run_store", RunStore)
    stage_finished = _Delegate("run_store", RunStore)
    stage_not_built = _Delegate("run_store", RunStore)
    stage_events = _Delegate("run_store", RunStore)
    add_alarms = _Delegate("run_store", RunStore)
    alarms = _Delegate("run_store", RunStore)
    # products
    record_product = _Delegate("product_store", ProductStore)
    find_product = _Delegate("product_store", ProductStore)
    refresh_product = _Delegate("product_store", ProductStore)
    verify_product = _Delegate("product_store", ProductStore)
    products = _Delegate("product_store", ProductStore)
    resolve_product = _Delegate("product_store", ProductStore)
    parents_of = _Delegate("product_store", ProductStore)
    children_of = _Delegate("product_store", ProductStore)
    products_made_from = _Delegate("product_store", ProductStore)
    products_depending_on = _Delegate("product_store", ProductStore)
    lineage_tree = _Delegate("product_store", ProductStore)
    # network cache
    cache_get = _Delegate("http_cache", HttpCache)
    cache_put = _Delegate("http_cache", HttpCache)
    cache_purge = _Delegate("http_cache", HttpCache)
    # nights
    night_status = _Delegate("night_store", NightStore)
    mark_night = _Delegate("night_store", NightStore)
    # frames, plan, QC
    upsert_frames = _Delegate("frame_store", FrameStore)
    frames = _Delegate("frame_store", FrameStore)
    replace_plan = _Delegate("plan_store", PlanStore)
    plan = _Delegate("plan_store", PlanStore)
    add_qc = _Delegate("qc_store", QCStore)
    qc = _Delegate("qc_store", QCStore)
    product_qc = _Delegate("qc_store", QCStore)
    frame_qc = _Delegate("qc_store", QCStore)

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
        run = self.run_store.get_run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id!r}")
        return {
            "run": as_dict(run),
            "frames": self.frame_store.frame_counts(run_id),
            "plan": self.plan_store.plan_counts(run_id),
            "products": self.product_store.product_counts(run_id),
            "qc": self.qc_store.qc_count(run_id),
            "stages": [{k: v for k, v in as_dict(e).items() if k != "run_id"}
                       for e in self.run_store.stage_events(run_id)],
        }
