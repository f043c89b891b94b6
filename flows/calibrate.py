"""Flow: calibrate a raw night (``python -m flows.calibrate --data DIR``).

Masters are built once per plan key (one task each) and reused across runs when their inputs'
checksums match; each science frame is calibrated by its own task. Every master and frame starts
as soon as the masters it needs exist. A frame or master that fails is recorded with its reason;
the rest goes on.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import as_completed
from pydantic import Field

from flows.inventory import run_inventory_stage
from flows.plan import PlanParams, run_plan_stage
from flows.runners import RunnerSettings, make_task_runner
from flows.session import (
    RunSession,
    closing_failed_run,
    open_session,
    raise_alarms,
    recorded_stage,
)
from flows.settings import default_out_root
from tasks.calibrate import build_master_task, calibrate_frame_task
from tgpcore import __version__
from tgpcore.calibration.plan import CalibrationPlan
from tgpcore.calibration.schedule import (
    CalibrationSchedule,
    frame_masters,
    master_inputs,
    master_threads,
)
from tgpcore.inventory import FrameRecord, Inventory
from tgpcore.io.checksum import product_key
from tgpcore.io.fits import read_flags
from tgpcore.qc import frame_figures, night_calibration_alarms

CALIBRATION_PARAMS_VERSION = 2  # 2: noise measured before rejection, QC cards, pickup-aware
# cosmic rays


class CalibrateParams(PlanParams):
    """Parameters of the calibration flow."""

    cosmic_rays: bool = Field(True, description="Detect and mask cosmic rays (astroscrappy)")


@dataclass
class CalibrationOutcome:
    """What the calibration stage produced: master paths and calibrated frames."""

    masters: dict[str, str] = field(default_factory=dict)
    calibrated: dict[str, str] = field(default_factory=dict)  # raw path -> calibrated path
    rejected: dict[str, str] = field(default_factory=dict)  # raw path -> reason
    reused: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


def _frame_input(rec: FrameRecord) -> dict[str, Any]:
    return {"path": rec.path, "hdu_index": rec.hdu_index or 0,
            "exptime_s": float(rec.exptime_s or 0.0), "summary": rec.header}


def run_calibrate_stage(session: RunSession, params: CalibrateParams, inv: Inventory,
                        plan: CalibrationPlan) -> CalibrationOutcome:
    """The calibration stage inside an open run.

    Masters and frames start as soon as what they need exists (:class:`CalibrationSchedule`),
    so frames of one filter are calibrated while another filter's flat is still combined.
    """
    logger = get_run_logger()
    db, run_id = session.db, session.run_id
    recs = {r.path: r for r in inv.records}
    frame_ids = {f.path: f.id for f in db.frames(run_id)}
    out = CalibrationOutcome()
    sched = CalibrationSchedule(plan)
    pkeys: dict[str, str] = {}  # plan master key -> product key
    master_dir = session.run_dir / "masters"
    params_rec = {"cosmic_rays": params.cosmic_rays, "version": CALIBRATION_PARAMS_VERSION}
    building: dict[Any, tuple[Any, str, dict]] = {}  # future -> (spec, product key, inputs)
    todo = []

    def start_masters() -> None:
        while ready := sched.ready_masters():
            for spec in ready:
                deps = master_inputs(spec)
                inputs = {"members": sorted(recs[p].sha256 for p in spec.members),
                          **{d: pkeys[v] for d, v in deps.items()}}
                pkey = pkeys[spec.key] = product_key(f"master_{spec.kind}", inputs,
                                                     params_rec, __version__)
                found = db.find_product(pkey)
                if found is not None:
                    sched.finished(spec.key, found.path)
                    db.record_product(run_id, f"master_{spec.kind}", pkey, found.path,
                                      found.checksum, inputs, params_rec, __version__)
                    out.reused += 1
                    logger.info("master %s reused from %s", spec.key, found.path)
                    continue
                fut = build_master_task.submit(
                    spec.kind, spec.key, [_frame_input(recs[p]) for p in spec.members],
                    str(master_dir / f"{spec.key}.fits"),
                    sched.paths.get(deps.get("bias", "")), sched.paths.get(deps.get("dark", "")),
                    # every frame submitted so far counts as running: one thread unless the
                    # master is truly alone (the master bias, at the start)
                    master_threads(len(ready), len(building) + len(todo),
                                   params.runner.n_workers))
                building[fut] = (spec, pkey, inputs)

    def start_frames() -> None:
        ready, lost = sched.ready_frames()
        out.rejected.update(lost)
        for e in ready:
            keys = frame_masters(e)
            inputs = {"frame": recs[e.path].sha256, **{k: pkeys[v] for k, v in keys.items()}}
            pkey = product_key("calibrated", inputs, params_rec, __version__)
            found = db.find_product(pkey)
            if found is not None:
                out.calibrated[e.path] = found.path
                db.record_product(run_id, "calibrated", pkey, found.path, found.checksum,
                                  inputs, params_rec, __version__)
                out.reused += 1
                continue
            dest = session.run_dir / "calibrated" / f"{Path(e.path).name.split('.')[0]}.fits"
            fut = calibrate_frame_task.submit(
                _frame_input(recs[e.path]), str(dest),
                *(sched.paths.get(keys.get(k, "")) for k in ("bias", "dark", "flat")),
                params.cosmic_rays)
            todo.append((e, pkey, inputs, fut))

    with recorded_stage(session, "calibrate") as counters:
        start_masters()
        start_frames()
        while building:
            fut = next(as_completed(list(building)))
            spec, pkey, inputs = building.pop(fut)
            kind = spec.kind
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - one master never kills the night
                sched.failed(spec.key, f"{type(exc).__name__}: {exc}")
                logger.error("master %s failed: %s", spec.key, exc)
                db.record_product(run_id, f"master_{kind}", pkey, None, None, inputs,
                                  params_rec, __version__, status="failed")
            else:
                sched.finished(spec.key, res["path"])
                pid = db.record_product(run_id, f"master_{kind}", pkey, res["path"],
                                        res["checksum"], inputs, params_rec, __version__)
                db.add_qc(run_id, res["qc"], product_id=pid)
                logger.info("master %s: %s", spec.key,
                            ", ".join(f"{k}={v:.4g}" for k, v in res["qc"].items()))
            start_masters()
            start_frames()
        out.masters = dict(sched.paths)
        failed = sched.reasons
        for e in plan.entries:
            if e.status != "ok":
                out.rejected[e.path] = f"plan: {e.reason}"
        rows = []
        for e, pkey, inputs, fut in todo:
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - a crashed task is one rejected frame
                res = {"status": "rejected", "reason": f"{type(exc).__name__}: {exc}"}
            if res["status"] != "ok":
                out.rejected[e.path] = res["reason"]
                continue
            out.calibrated[e.path] = res["product"]
            pid = db.record_product(run_id, "calibrated", pkey, res["product"],
                                    res["checksum"], inputs, params_rec, __version__)
            db.add_qc(run_id, res["qc"], frame_id=frame_ids.get(e.path), product_id=pid)
            rows.append({"frame": recs[e.path].relpath, "group": e.group_key or "",
                         **{k: round(v, 4) for k, v in res["qc"].items()},
                         "notes": "; ".join(res["notes"])})
        if out.rejected:
            db.upsert_frames(run_id, [{"path": p, "status": "rejected",
                                       "reason": f"calibration: {r}"}
                                      for p, r in out.rejected.items()])
        figures = [frame_figures(cal, recs[raw].relpath, str(recs[raw].filter or ""),
                                 str(recs[raw].group_key or "").rsplit("/", 1)[0],
                                 str(recs[raw].kind or "science"))
                   for raw, cal in sorted(out.calibrated.items())]
        alarms = raise_alarms(session, night_calibration_alarms(figures, read_flags=read_flags))
        n_total = len(plan.entries)
        counters.update({"masters": len(out.masters), "masters_failed": len(failed),
                         "alarms": len(alarms),
                         "calibrated": len(out.calibrated), "rejected": len(out.rejected),
                         "reused": out.reused})
        logger.info("calibrated %d/%d frames; %d skipped%s", len(out.calibrated), n_total,
                    len(out.rejected), (": " + "; ".join(
                        f"{Path(p).name}: {r}" for p, r in out.rejected.items()))
                    if out.rejected else "")
        md = [f"# Calibration: {len(out.calibrated)}/{n_total} frames calibrated", "",
              f"- masters: {len(out.masters)} ({out.reused} products reused from earlier runs)"]
        md += [f"- master **{k}** failed: {r}" for k, r in failed.items()]
        md += [f"- frame `{Path(p).name}` skipped: {r}" for p, r in out.rejected.items()]
        create_markdown_artifact("\n".join(md), key="calibration-summary")
        if rows:
            create_table_artifact(rows, key="calibration-frame-qc",
                                  description="Per-frame QC of the calibrated frames")
    return out


@flow(name="tgp-calibrate", log_prints=True)
def calibrate_flow(params: CalibrateParams, run_id: str | None = None) -> dict[str, Any]:
    """Inventory, plan and calibrate a night, recording everything."""
    session = open_session(params.data, params.out, params.profile,
                           params.model_dump(mode="json"), run_id=run_id)
    with closing_failed_run(session):
        inv = run_inventory_stage(session, params)
        plan = run_plan_stage(session, params, inv)
        outcome = run_calibrate_stage(session, params, inv, plan)
    if run_id is None:
        session.db.finish_run(session.run_id, "succeeded")
    return {"run_id": session.run_id, "run_dir": str(session.run_dir),
            "calibration": outcome.to_dict(), "db_url": session.db_url}


def main(argv: list[str] | None = None) -> int:
    """Command line: calibrate a night."""
    ap = argparse.ArgumentParser(prog="python -m flows.calibrate", description=__doc__)
    ap.add_argument("--data", required=True, help="raw night folder")
    ap.add_argument("--out", default=default_out_root(), help="output root")
    ap.add_argument("--profile", help="instrument profile name or TOML file")
    ap.add_argument("--grouping", help="TOML file overriding the grouping")
    ap.add_argument("--plan-rules", help="TOML file overriding the matching rules")
    ap.add_argument("--no-cosmic-rays", action="store_true", help="skip cosmic-ray masking")
    ap.add_argument("--runner", choices=["dask", "threads"], default="dask")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    params = CalibrateParams(data=args.data, out=args.out, profile=args.profile,
                             grouping=args.grouping, plan_rules=args.plan_rules,
                             cosmic_rays=not args.no_cosmic_rays,
                             runner=RunnerSettings(kind=args.runner, n_workers=args.workers))
    result = calibrate_flow.with_options(task_runner=make_task_runner(params.runner))(params)
    cal = result["calibration"]
    print(f"run {result['run_id']}: {len(cal['calibrated'])} frames calibrated, "
          f"{len(cal['rejected'])} skipped, {len(cal['masters'])} masters")
    for path, reason in cal["rejected"].items():
        print(f"  skipped {path}: {reason}")
    print(f"products: {result['run_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
