"""Flow: the calibration plan of a raw night (``python -m flows.plan --data DIR``)."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from flows.inventory import InventoryParams
from flows.runner import stage_run
from flows.runners import RunnerSettings, make_task_runner
from flows.session import RunSession
from tasks.inventory import build_plan_task
from tgpcore.calibration.plan import CalibrationPlan, format_plan
from tgpcore.inventory import Inventory


class PlanOptions(BaseModel):
    """The plan stage's own options."""

    plan_rules: str | None = Field(None, description="TOML file overriding the calibration "
                                                     "plan's matching rules")


class PlanParams(InventoryParams, PlanOptions):
    """Parameters of the plan flow: the night's, plus the plan's options."""



def run_plan_stage(session: RunSession, params: PlanParams, inv: Inventory) -> CalibrationPlan:
    """The plan stage inside an open run: build, store, summarise."""
    logger = get_run_logger()
    with stage_run(session, "plan", "frames") as counts:
        plan = CalibrationPlan.from_dict(
            build_plan_task(inv.to_payload(), params.plan_rules))
        masters, entries = plan.db_records()
        session.db.replace_plan(session.run_id, masters, entries)
        ok = sum(e.status == "ok" for e in plan.entries)
        # every frame planned (a refusal is the plan's answer, lost by calibration)
        counts.total = counts.done = len(plan.entries)
        counts.extra.update({"masters": len(plan.masters), "frames_ok": ok,
                             "frames_refused": len(plan.entries) - ok})
        logger.info("plan: %d/%d frames can be calibrated with %d masters", ok,
                    len(plan.entries), len(plan.masters))
        for w in plan.warnings:
            logger.warning(w)
        create_markdown_artifact("# Calibration plan\n\n```\n" + format_plan(plan) + "\n```",
                                 key="calibration-plan", description="Masters per frame")
        create_table_artifact(
            [{"frame": e.relpath, "group": e.group_key or "", "bias": e.bias_key or "",
              "dark": e.dark_key or "", "dark_scale": e.dark_scale, "flat": e.flat_key or "",
              "status": e.status, "reason": e.reason or "", "warnings": "; ".join(e.warnings)}
             for e in plan.entries], key="calibration-plan-table")
    return plan


def plan_step(night: Any) -> CalibrationPlan:
    """The plan in a walk of the stage table."""
    return run_plan_stage(night.session, night.params, night.get("inventory"))


@flow(name="tgp-plan", log_prints=True)
def plan_flow(params: PlanParams, run_id: str | None = None) -> dict[str, Any]:
    """Inventory a night and build its calibration plan, recording both."""
    from flows.walk import run_stages

    return run_stages(params, ["plan"], run_id).result


def record_plan(data: str, out: str, profile: str | None = None, grouping: str | None = None,
                plan_rules: str | None = None, runner: str = "threads") -> tuple[str, str]:
    """Inventory and plan a night through the plan flow, recording both; (run id, db URL)."""
    params = PlanParams(data=data, out=out, profile=profile, grouping=grouping,
                        plan_rules=plan_rules, runner=RunnerSettings(kind=runner))
    result = plan_flow.with_options(task_runner=make_task_runner(params.runner))(params)
    return result["run_id"], result["db_url"]


def main(argv: list[str] | None = None) -> int:
    """Command line: ``tgp plan`` (:mod:`flows.commands.plan`)."""
    from flows.commands.plan import main as plan_main

    return plan_main(argv)


if __name__ == "__main__":
    sys.exit(main())
