"""Flow: calibrate a raw night (``python -m flows.calibrate --data DIR``).

Masters are built once per plan key (one task each) and reused across runs when their inputs'
checksums match; each science frame is calibrated by its own task. Every master and frame starts
as soon as the masters it needs exist. A frame or master that fails is recorded with its reason;
the rest goes on.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import as_completed
from pydantic import BaseModel, Field

from flows.inventory import InventoryParams
from flows.plan import PlanOptions
from flows.runner import Item, StageRunner, collect, stage_run
from flows.session import (
    RunSession,
    raise_alarms,
)
from flows.stagecli import run_stage_cli
from flows.walk import run_stages
from tasks.calibrate import build_master_task, calibrate_frame_task
from tgpcore.calibration.plan import CalibrationPlan
from tgpcore.calibration.schedule import (
    CalibrationSchedule,
    frame_masters,
    master_inputs,
    master_threads,
)
from tgpcore.inventory import FrameRecord, Inventory
from tgpcore.io.fits import read_flags
from tgpcore.qc import frame_figures, night_calibration_alarms
from tgpcore.qc.failures import is_environmental

CALIBRATION_PARAMS_VERSION = 2  # 2: noise measured before rejection, QC cards, pickup-aware
# cosmic rays


class CalibrateOptions(BaseModel):
    """The calibration stage's own options."""

    cosmic_rays: bool = Field(True, description="Detect and mask cosmic rays (astroscrappy)")


class CalibrateParams(InventoryParams, PlanOptions, CalibrateOptions):
    """Parameters of the calibration flow: the options of the stages it runs."""



@dataclass
class CalibrationOutcome:
    """What the calibration stage produced: master paths and calibrated frames."""

    masters: dict[str, str] = field(default_factory=dict)
    calibrated: dict[str, str] = field(default_factory=dict)  # raw path -> calibrated path
    rejected: dict[str, str] = field(default_factory=dict)  # raw path -> reason (the data)
    # raw path -> reason: the task failed (a full disk, a crash) or a master it needs failed;
    # the frame itself is not at fault and is not marked rejected
    failed: dict[str, str] = field(default_factory=dict)
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
    with stage_run(session, "calibrate", "frames") as counts:
        run = _CalibrationRun(session, params, inv, plan, StageRunner(session, counts))
        run.start()
        while run.building:
            run.collect_master()
            run.start()
        run.collect_frames()
        _calibration_report(session, run)
        counts.total = len(plan.entries)
        counts.done = len(run.out.calibrated)
        counts.failed = len(run.out.rejected) + len(run.out.failed)
        counts.reused = sum(1 for p in run.out.calibrated if p in run.reused_frames)
        counts.extra.update({"masters": len(run.out.masters),
                             "masters_failed": len(run.sched.reasons),
                             "masters_reused": run.reused_masters})
    return run.out


class _CalibrationRun:
    """The state of one calibration stage: the schedule, running tasks, the outcome."""

    def __init__(self, session: RunSession, params: CalibrateParams, inv: Inventory,
                 plan: CalibrationPlan, runner: StageRunner) -> None:
        self.session, self.params, self.plan, self.runner = session, params, plan, runner
        self.recs = {r.path: r for r in inv.records}
        self.frame_ids = {f.path: f.id for f in session.db.frames(session.run_id)}
        self.out = CalibrationOutcome()
        self.sched = CalibrationSchedule(plan)
        self.pkeys: dict[str, str] = {}  # plan master key -> product key
        self.pids: dict[str, int] = {}  # plan master key -> product id (parents)
        self.params_rec = {"cosmic_rays": params.cosmic_rays,
                           "version": CALIBRATION_PARAMS_VERSION}
        self.building: dict[Any, tuple[Any, Item, str]] = {}  # future -> (spec, item, key)
        self.todo: list[tuple[Any, Item, str, Any]] = []
        self.reused_frames: set[str] = set()
        self.reused_masters = 0
        self.rows: list[dict[str, Any]] = []

    def start(self) -> None:
        """Submit every master and frame whose masters exist."""
        self._start_masters()
        self._start_frames()

    def _start_masters(self) -> None:
        sched, recs = self.sched, self.recs
        while ready := sched.ready_masters():
            for spec in ready:
                deps = master_inputs(spec)
                inputs = {"members": sorted(recs[p].sha256 for p in spec.members),
                          **{d: self.pkeys[v] for d, v in deps.items()}}
                item = Item(spec.key, f"master_{spec.kind}", inputs, self.params_rec,
                            submit=lambda: None, parents=self._parents(deps.values()))
                key = self.pkeys[spec.key] = self.runner.key(item.kind, inputs, item.params)
                found = self.runner.reuse(item, key, need_result=False)
                if found is not None:
                    sched.finished(spec.key, found.result["path"])
                    self.pids[spec.key] = found.product_id
                    self.reused_masters += 1
                    continue
                fut = build_master_task.submit(
                    spec.kind, spec.key, [_frame_input(recs[p]) for p in spec.members],
                    str(self.session.run_dir / "masters" / f"{spec.key}.fits"),
                    sched.paths.get(deps.get("bias", "")), sched.paths.get(deps.get("dark", "")),
                    # every frame submitted so far counts as running: one thread unless the
                    # master is truly alone (the master bias, at the start)
                    master_threads(len(ready), len(self.building) + len(self.todo),
                                   self.params.runner.n_workers))
                self.building[fut] = (spec, item, key)

    def _parents(self, master_keys: Any) -> tuple[int, ...]:
        return tuple(self.pids[k] for k in master_keys if k in self.pids)

    def _start_frames(self) -> None:
        ready, lost = self.sched.ready_frames()
        for why in lost.values():
            if is_environmental(why):
                self.runner.counts.lost(why)         # fails the stage, not just partial
        self.out.failed.update(lost)
        for e in ready:
            keys = frame_masters(e)
            inputs = {"frame": self.recs[e.path].sha256,
                      **{k: self.pkeys[v] for k, v in keys.items()}}
            item = Item(e.path, "calibrated", inputs, self.params_rec, submit=lambda: None,
                        parents=self._parents(keys.values()),
                        frame_id=self.frame_ids.get(e.path))
            key = self.runner.key("calibrated", inputs, self.params_rec)
            found = self.runner.reuse(item, key, need_result=False)
            if found is not None:
                self.out.calibrated[e.path] = found.result["path"]
                self.reused_frames.add(e.path)
                continue
            dest = self.session.run_dir / "calibrated" / f"{Path(e.path).name.split('.')[0]}.fits"
            fut = calibrate_frame_task.submit(
                _frame_input(self.recs[e.path]), str(dest),
                *(self.sched.paths.get(keys.get(k, "")) for k in ("bias", "dark", "flat")),
                self.params.cosmic_rays)
            self.todo.append((e, item, key, fut))

    def collect_master(self) -> None:
        """Wait for the next master and record it (a failed master fails its frames)."""
        fut = next(as_completed(list(self.building)))
        spec, item, key = self.building.pop(fut)
        res, reason = collect(fut)
        if reason is not None:
            self.sched.failed(spec.key, reason)
            if is_environmental(reason):
                self.runner.counts.environmental.append(reason)
                self.runner.counts.message = self.runner.counts.message or reason
            get_run_logger().error("master %s failed: %s", spec.key, reason)
            self.runner.record(item, key, None, failed=True)
            return
        self.sched.finished(spec.key, res["path"])
        done = self.runner.finish(item, key, res, None, store=False)
        self.pids[spec.key] = done.product_id
        get_run_logger().info("master %s: %s", spec.key,
                              ", ".join(f"{k}={v:.4g}" for k, v in res["qc"].items()))

    def collect_frames(self) -> None:
        """Collect the calibrated frames; a crashed or rejected frame is one rejected frame."""
        self.out.masters = dict(self.sched.paths)
        for e in self.plan.entries:
            if e.status != "ok":
                self.out.rejected[e.path] = f"plan: {e.reason}"
        for e, item, key, fut in self.todo:
            res, reason = collect(fut)
            if reason is not None:                   # the task raised: not the frame's fault
                if is_environmental(reason):
                    self.runner.counts.lost(reason)  # fails the stage, not just partial
                self.out.failed[e.path] = reason
                self.runner.record(item, key, None, failed=True)
                continue
            if res["status"] != "ok":                # the frame's own problem
                self.out.rejected[e.path] = res["reason"]
                continue
            self.out.calibrated[e.path] = res["product"]
            self.runner.finish(item, key, {**res, "path": res["product"]}, None, store=False)
            self.rows.append({"frame": self.recs[e.path].relpath, "group": e.group_key or "",
                              **{k: round(v, 4) for k, v in res["qc"].items()},
                              "notes": "; ".join(res["notes"])})
        self.out.reused = self.runner.counts.reused


def _calibration_report(session: RunSession, run: _CalibrationRun) -> None:
    """Rejected frames, alarms, log line and the Prefect artifacts of the stage."""
    out, recs, db = run.out, run.recs, session.db
    if out.rejected:
        db.upsert_frames(session.run_id, [{"path": p, "status": "rejected",
                                           "reason": f"calibration: {r}"}
                                          for p, r in out.rejected.items()])
    figures = [frame_figures(cal, recs[raw].relpath, str(recs[raw].filter or ""),
                             str(recs[raw].group_key or "").rsplit("/", 1)[0],
                             str(recs[raw].kind or "science"))
               for raw, cal in sorted(out.calibrated.items())]
    alarms = raise_alarms(session, night_calibration_alarms(figures, read_flags=read_flags))
    run.runner.counts.extra["alarms"] = len(alarms)
    n_total = len(run.plan.entries)
    get_run_logger().info("calibrated %d/%d frames; %d skipped%s", len(out.calibrated), n_total,
                          len(out.rejected), (": " + "; ".join(
                              f"{Path(p).name}: {r}" for p, r in out.rejected.items()))
                          if out.rejected else "")
    for p, r in out.failed.items():
        get_run_logger().error("calibration of %s failed: %s", Path(p).name, r)
    md = [f"# Calibration: {len(out.calibrated)}/{n_total} frames calibrated", "",
          f"- masters: {len(out.masters)} ({out.reused} products reused from earlier runs)"]
    md += [f"- master **{k}** failed: {r}" for k, r in run.sched.reasons.items()]
    md += [f"- frame `{Path(p).name}` skipped: {r}" for p, r in out.rejected.items()]
    md += [f"- frame `{Path(p).name}` **failed**: {r}" for p, r in out.failed.items()]
    create_markdown_artifact("\n".join(md), key="calibration-summary")
    if run.rows:
        create_table_artifact(run.rows, key="calibration-frame-qc",
                              description="Per-frame QC of the calibrated frames")


def calibrate_step(night: Any) -> CalibrationOutcome:
    """The calibration in a walk of the stage table."""
    return run_calibrate_stage(night.session, night.params, night.get("inventory"),
                               night.get("plan"))


@flow(name="tgp-calibrate", log_prints=True)
def calibrate_flow(params: CalibrateParams, run_id: str | None = None) -> dict[str, Any]:
    """Inventory, plan and calibrate a night, recording everything."""
    return run_stages(params, ["calibrate"], run_id).result


def main(argv: list[str] | None = None) -> int:
    """Command line: calibrate a night."""
    result = run_stage_cli(argv, module="calibrate", doc=__doc__, params_cls=CalibrateParams,
                           flow_fn=calibrate_flow, runner="dask",
                           options=("grouping", "plan_rules", "cosmic_rays"))
    cal = result["calibration"]
    print(f"run {result['run_id']}: {len(cal['calibrated'])} frames calibrated, "
          f"{len(cal['rejected'])} skipped, {len(cal['masters'])} masters")
    for path, reason in cal["rejected"].items():
        print(f"  skipped {path}: {reason}")
    for path, reason in cal.get("failed", {}).items():
        print(f"  FAILED {path}: {reason}")
    print(f"products: {result['run_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
