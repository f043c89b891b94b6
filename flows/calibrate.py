"""Flow: calibrate a raw night (``python -m flows.calibrate --data DIR``).

Masters are built once per plan key (one task each, biases, then darks, then flats) and reused
across runs when their inputs' checksums match; then each science frame is calibrated by its
own task. A frame or master that fails is recorded with its reason; the rest goes on.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import Field

from flows.inventory import run_inventory_stage
from flows.plan import PlanParams, run_plan_stage
from flows.runners import RunnerSettings, make_task_runner
from flows.session import RunSession, closing_failed_run, open_session, recorded_stage
from flows.settings import default_out_root
from tasks.calibrate import build_master_task, calibrate_frame_task
from tgpcore import __version__
from tgpcore.calibration.plan import CalibrationPlan
from tgpcore.inventory import FrameRecord, Inventory
from tgpcore.io.checksum import product_key

CALIBRATION_PARAMS_VERSION = 1


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


def _used_masters(plan: CalibrationPlan) -> set[str]:
    used = {k for e in plan.entries if e.status == "ok"
            for k in (e.bias_key, e.dark_key, e.flat_key) if k}
    for key in list(used):
        used |= {v for d, v in plan.masters[key].depends.items() if d in ("bias", "dark")}
    return used


def run_calibrate_stage(session: RunSession, params: CalibrateParams, inv: Inventory,
                        plan: CalibrationPlan) -> CalibrationOutcome:
    """The calibration stage inside an open run."""
    logger = get_run_logger()
    db, run_id = session.db, session.run_id
    recs = {r.path: r for r in inv.records}
    frame_ids = {f.path: f.id for f in db.frames(run_id)}
    out = CalibrationOutcome()
    pkeys: dict[str, str] = {}  # plan master key -> product key
    failed: dict[str, str] = {}  # plan master key -> reason
    master_dir = session.run_dir / "masters"
    params_rec = {"cosmic_rays": params.cosmic_rays, "version": CALIBRATION_PARAMS_VERSION}
    with recorded_stage(session, "calibrate") as counters:
        used = _used_masters(plan)
        for kind in ("bias", "dark", "flat"):
            pending = []
            for spec in plan.masters.values():
                if spec.kind != kind or spec.key not in used:
                    continue
                deps = {d: spec.depends.get(d) for d in ("bias", "dark") if spec.depends.get(d)}
                broken = [d for d in deps.values() if d in failed]
                if broken:
                    failed[spec.key] = f"depends on failed master {broken[0]}"
                    continue
                inputs = {"members": sorted(recs[p].sha256 for p in spec.members),
                          **{d: pkeys[v] for d, v in deps.items()}}
                pkey = product_key(f"master_{kind}", inputs, params_rec, __version__)
                pkeys[spec.key] = pkey
                found = db.find_product(pkey)
                if found is not None:
                    out.masters[spec.key] = found.path
                    db.record_product(run_id, f"master_{kind}", pkey, found.path,
                                      found.checksum, inputs, params_rec, __version__)
                    out.reused += 1
                    logger.info("master %s reused from %s", spec.key, found.path)
                    continue
                fut = build_master_task.submit(
                    kind, spec.key, [_frame_input(recs[p]) for p in spec.members],
                    str(master_dir / f"{spec.key}.fits"),
                    out.masters.get(deps.get("bias", "")), out.masters.get(deps.get("dark", "")))
                pending.append((spec, pkey, inputs, fut))
            for spec, pkey, inputs, fut in pending:
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 - one master never kills the night
                    failed[spec.key] = f"{type(exc).__name__}: {exc}"
                    logger.error("master %s failed: %s", spec.key, exc)
                    db.record_product(run_id, f"master_{kind}", pkey, None, None, inputs,
                                      params_rec, __version__, status="failed")
                    continue
                out.masters[spec.key] = res["path"]
                pid = db.record_product(run_id, f"master_{kind}", pkey, res["path"],
                                        res["checksum"], inputs, params_rec, __version__)
                db.add_qc(run_id, res["qc"], product_id=pid)
                logger.info("master %s: %s", spec.key,
                            ", ".join(f"{k}={v:.4g}" for k, v in res["qc"].items()))

        todo = []
        for e in plan.entries:
            if e.status != "ok":
                out.rejected[e.path] = f"plan: {e.reason}"
                continue
            keys = {"bias": e.bias_key, "dark": e.dark_key, "flat": e.flat_key}
            broken = [k for k in keys.values() if k and k in failed]
            if broken:
                out.rejected[e.path] = f"master {broken[0]} failed: {failed[broken[0]]}"
                continue
            inputs = {"frame": recs[e.path].sha256,
                      **{k: pkeys[v] for k, v in keys.items() if v}}
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
                _frame_input(recs[e.path]), str(dest), out.masters.get(e.bias_key or ""),
                out.masters.get(e.dark_key or ""), out.masters.get(e.flat_key or ""),
                params.cosmic_rays)
            todo.append((e, pkey, inputs, fut))
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
        n_total = len(plan.entries)
        counters.update({"masters": len(out.masters), "masters_failed": len(failed),
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
