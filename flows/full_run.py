"""Flow: the whole night, stage after stage (``python -m flows.full_run --data DIR``).

The stages are the table of :mod:`flows.stages`, walked by :mod:`flows.walk`. Exit codes: 0 when
the run succeeded, 2 when it was partial, 1 when it failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
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
from flows.runner import EXIT_CODES
from flows.runners import RunnerSettings, make_task_runner, shared_cluster
from flows.session import closing_failed_run, open_session
from flows.settings import default_out_root
from flows.stages import STAGE_NAMES, stage_range
from flows.walk import NightRun, run_status, stage_states, walk
from tgpcore.calibration.plan import CalibrationPlan, format_plan


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


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m flows.full_run`` and ``tgp run``."""
    ap = argparse.ArgumentParser(prog="python -m flows.full_run",
                                 description="Run the tgp pipeline on one raw night.")
    ap.add_argument("--data", required=True, help="raw night folder (never modified)")
    ap.add_argument("--verbose", action="store_true",
                    help="show the libraries' INFO logs (Dask) on the console too")
    ap.add_argument("--out", default=default_out_root(),
                    help="output root; the run writes <out>/<run-id>/ (default: %(default)s)")
    ap.add_argument("--profile", help="instrument profile name or TOML file "
                                      "(default: from TELESCOP/INSTRUME)")
    ap.add_argument("--grouping", help="TOML file overriding the cluster/pointing grouping")
    ap.add_argument("--plan-rules", help="TOML file overriding the calibration matching rules")
    ap.add_argument("--plan-only", action="store_true",
                    help="print the calibration plan, store it, and stop")
    ap.add_argument("--from-stage", choices=STAGE_NAMES)
    ap.add_argument("--to-stage", choices=STAGE_NAMES)
    ap.add_argument("--gaia-file", help="local Gaia-like table (CSV/VOTable/ECSV/FITS) instead "
                                        "of querying the Gaia archive")
    ap.add_argument("--gaia-release", choices=["dr3", "dr2"], default="dr3")
    ap.add_argument("--members", help="published member list instead of the membership "
                                      "mixture: a file (Gaia ids or positions and a "
                                      "probability column) or vizier:cantat-gaudin2020, "
                                      "vizier:hunt-reffert2023, vizier:dias2021, "
                                      "vizier:CATALOG#CLUSTER_COLUMN")
    ap.add_argument("--reference-catalog", help="reference catalogue (ra, dec) for plate "
                                                "solving; default: the --gaia-file")
    ap.add_argument("--standards", help="standard-star catalogue (Landolt nlandolt.dat, or an "
                                        "ECSV/CSV table with name, ra, dec, V, B-V, U-B)")
    ap.add_argument("--photometric-reference", help="reference catalogue of the cluster fields "
                                                    "for photometric calibration without "
                                                    "standards")
    ap.add_argument("--runner", choices=["dask", "threads"], default="dask",
                    help="task runner (default: a local Dask cluster)")
    ap.add_argument("--dask-address", help="use an existing Dask scheduler, tcp://host:8786")
    ap.add_argument("--workers", type=int, default=2, help="local Dask workers (default: 2)")
    return ap


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


LABELS = {"johnson": "our U, B, V", "gaia": "Gaia G, BP, RP"}


def science_lines(result: dict[str, Any]) -> list[str]:
    """The answer of the run: each cluster's fitted parameters (and the Gaia check)."""
    lines = []
    for cluster, f in (result.get("isochrone_fit") or {}).items():
        if f["status"] != "ok":
            lines.append(f"isochrone fit {cluster}: FAILED: {f.get('message')}")
            continue
        for system, fit in f["fits"].items():
            if fit["status"] != "ok":
                lines.append(f"isochrone fit {cluster} ({LABELS[system]}): FAILED: "
                             f"{fit['message']}")
                continue
            s = fit["summary"]
            role = "the cluster" if system == f["photometry"] else "check"
            lines.append(f"isochrone fit {cluster} ({LABELS[system]}; {role}): log age "
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


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: exit 0 when the run succeeded, 2 when partial, 1 when failed."""
    args = build_parser().parse_args(argv)
    try:
        params = params_from_args(args)
        stage_range(params.from_stage, params.to_stage)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = Path(params.data)
    if not data.is_dir():
        print(f"error: raw night folder {data} does not exist", file=sys.stderr)
        return 1
    if not any(p.is_file() for p in data.rglob("*")):
        print(f"error: no FITS files in {data}", file=sys.stderr)
        return 1
    from flows.console import configure_console
    from flows.ephemeral import bind_temporary_server

    configure_console(args.verbose)
    bind_temporary_server()
    result = run(params)
    print_outcome(result, params.plan_only)
    return EXIT_CODES[result["status"]]


if __name__ == "__main__":
    sys.exit(main())
