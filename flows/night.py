"""The full-run flow: the whole night, stage after stage (the ``tgp-full-run`` flow behind
``python -m flows.full_run``, the service and the nightly deployment).

The stages are the table of :mod:`flows.stages`, walked by :mod:`flows.walk`.
"""

from __future__ import annotations

import argparse
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from flows.calibrate import CalibrateOptions
from flows.catalogs import CatalogOptions
from flows.inventory import InventoryParams
from flows.isochrone_fit import FitOptions
from flows.photcal import PhotcalOptions
from flows.photometry import PhotometryOptions
from flows.plan import PlanOptions
from flows.register import RegisterOptions
from flows.runners import RunnerSettings, make_task_runner, shared_cluster
from flows.session import closing_failed_run, open_session
from flows.stages import STAGE_NAMES, stage_range
from flows.walk import NightRun, run_status, stage_states, walk
from tgpcore.calibration.plan import CalibrationPlan, format_plan
from tgpcore.fitting.plan import fit_label


class RangeOptions(BaseModel):
    """Which stages of the table a full run walks."""

    plan_only: bool = Field(False, description="Stop after the calibration plan")
    from_stage: str | None = Field(None, description=f"First stage: one of {STAGE_NAMES}")
    to_stage: str | None = Field(None, description="Last stage")


class FullRunParams(InventoryParams, PlanOptions, CalibrateOptions, RegisterOptions,
                    PhotometryOptions, PhotcalOptions, CatalogOptions, FitOptions, RangeOptions):
    """Parameters of a full run (shown as a typed form in the Prefect UI): the options of
    every stage, each declared once beside its stage and composed here."""


@flow(name="tgp-full-run", log_prints=True)
def full_run_flow(params: FullRunParams) -> dict[str, Any]:
    """Walk the stage table over one night (from ``from_stage`` to ``to_stage``) and record
    it; the run's status is rolled up from its stages'."""
    logger = get_run_logger()
    to_stage = "plan" if params.plan_only else params.to_stage
    names = stage_range(params.from_stage, to_stage)
    if params.reference_catalog is None and params.gaia_file:
        # The Gaia table of the field is also the plate solver's reference catalogue.
        params = params.model_copy(update={"reference_catalog": params.gaia_file})
    session = open_session(params.data, params.out, params.profile,
                           params.model_dump(mode="json"))
    logger.info("run %s: stages %s -> %s; products in %s", session.run_id, names[0],
                names[-1], session.run_dir)
    night = NightRun(session, params)
    night.result.update({"run_id": session.run_id, "run_dir": str(session.run_dir),
                         "db_url": session.db_url, "timings": night.timings})
    with closing_failed_run(session, with_type=True):
        walk(night, names)
    return close_run(night)


def close_run(night: NightRun) -> dict[str, Any]:
    """Roll the stages' statuses up into the run's, record it and summarise it."""
    session, result = night.session, night.result
    status = run_status(night)
    result.update({"failed": night.failed, "stages": stage_states(night), "status": status,
                   "alarms": session.db.alarms(session.run_id)})
    notes = [f"{n} {s}" for n, s in result["stages"].items() if s != "succeeded"]
    session.db.finish_run(session.run_id, status, message="; ".join(notes) or None)
    create_markdown_artifact(
        f"# tgp run {session.run_id}: {status}\n\n| stage | status | seconds |\n|---|---|---|\n"
        + "\n".join(f"| {n} | {s} | {night.timings.get(n, 0):.2f} |"
                    for n, s in result["stages"].items()),
        key="run-summary", description="Stages of this run")
    return result


def params_from_args(args: argparse.Namespace) -> FullRunParams:
    """Flow parameters from parsed command-line options."""
    return FullRunParams(
        data=args.data, out=args.out, profile=args.profile, grouping=args.grouping,
        plan_rules=args.plan_rules, plan_only=args.plan_only, from_stage=args.from_stage,
        gaia_file=args.gaia_file, gaia_release=args.gaia_release, members=args.members,
        reference_catalog=args.reference_catalog, standards_catalog=args.standards,
        photometric_reference=args.photometric_reference,
        to_stage=args.to_stage,
        runner=RunnerSettings(kind=args.runner, dask_address=args.dask_address,
                              n_workers=args.workers))


def run(params: FullRunParams) -> dict[str, Any]:
    """Run the full-run flow with its task runner (one Dask cluster for the whole run)."""
    with shared_cluster(params.runner) as address:
        runner = make_task_runner(params.runner, address=address)
        return full_run_flow.with_options(task_runner=runner)(params)


def print_outcome(result: dict[str, Any], plan_only: bool) -> None:
    """Tell the user the result, the alarms and where everything is (the stages printed their
    own progress lines as they ran)."""
    if plan_only and "plan" in result:
        print(format_plan(CalibrationPlan.from_dict(result["plan"])))
        print()
    print(f"run {result['run_id']}: {result['status']}")
    for name, state in result.get("stages", {}).items():
        if state != "succeeded":
            print(f"  {name}: {state}")
    for line in science_lines(result):
        print(line)
    alarms = result.get("alarms") or []
    if alarms:
        print(f"ALARMS ({len(alarms)}): read these before the science")
        for a in alarms:
            print(f"  {a['level'].upper()} [{a['stage']}] {a['subject']}: {a['message']}")
    print(f"products: {result['run_dir']}")
    print(f"run database: {result['db_url']}")
    if not plan_only:
        print(f"report: {result.get('report') or 'none (the report stage did not run)'}")


def science_lines(result: dict[str, Any]) -> list[str]:
    """The answer of the run: each cluster's fitted parameters (and the Gaia check)."""
    lines = []
    for cluster, f in (result.get("isochrone_fit") or {}).items():
        if f["status"] != "ok":
            lines.append(f"isochrone fit {cluster}: FAILED: {f.get('message')}")
            continue
        for system, fit in f["fits"].items():
            if fit["status"] != "ok":
                lines.append(f"isochrone fit {cluster} ({fit_label(system)}): FAILED: "
                             f"{fit['message']}")
                continue
            s = fit["summary"]
            role = "the cluster" if system == f["photometry"] else "check"
            label = fit.get("label") or fit_label(system)
            lines.append(f"isochrone fit {cluster} ({label}; {role}): log age "
                         f"{s['log_age']:.3f} ± {s['log_age_err']:.3f}, (m-M)0 {s['dm']:.3f} ± "
                         f"{s['dm_err']:.3f}, E(B-V) {s['ebv']:.3f} ± {s['ebv_err']:.3f}, "
                         f"[M/H] {s['mh']:+.3f} ± {s['mh_err']:.3f}")
            lines.append(f"  fit: {fit['fit_json']}")
        if f.get("note"):
            lines.append(f"  note: {f['note']}")
        if f.get("comparison"):
            lines.append("  our photometry against Gaia's: "
                         + "; ".join(f["comparison"]["summary"]))
    return lines
