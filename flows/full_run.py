"""Flow: the whole night, stage after stage (``python -m flows.full_run --data DIR``).

Stages that are not built yet are recorded as such and reported plainly; their output is never
faked.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import Field

from flows.calibrate import run_calibrate_stage
from flows.catalogs import run_catalogs_stage
from flows.crossmatch import matched_path, run_crossmatch_stage
from flows.inventory import run_inventory_stage
from flows.isochrone_fit import IsochroneFitParams, run_isochrone_fit_stage
from flows.membership import run_membership_stage, run_published_membership_stage
from flows.photcal import PhotcalParams, run_photcal_stage
from flows.photometry import run_photometry_stage
from flows.plan import run_plan_stage
from flows.register import (
    _scale,
    run_mosaic_stage,
    run_register_stage,
    run_solve_stage,
)
from flows.report import run_report_stage
from flows.runners import RunnerSettings, make_task_runner, shared_cluster
from flows.session import closing_failed_run, open_session, raise_alarms
from flows.settings import default_out_root
from flows.stages import BUILT, DEPENDS, STAGE_NAMES, STAGES, stage_range
from tgpcore.calibration.plan import CalibrationPlan, format_plan
from tgpcore.inventory import Inventory
from tgpcore.qc import solve_alarms


class FullRunParams(PhotcalParams):
    """Parameters of a full run (shown as a typed form in the Prefect UI)."""

    plan_only: bool = Field(False, description="Stop after the calibration plan")
    gaia_file: str | None = Field(None, description="Local Gaia-like table (CSV, VOTable, ECSV, "
                                                    "FITS) instead of querying the archive")
    gaia_release: str = Field("dr3", description="Gaia release to query: dr3 or dr2")
    members: str | None = Field(
        None, description="Published member list instead of the membership mixture: a file "
                          "(Gaia ids or positions, and a probability column) or "
                          "vizier:cantat-gaudin2020 | vizier:hunt-reffert2023 | vizier:dias2021 "
                          "| vizier:CATALOG#CLUSTER_COLUMN")
    fit_walkers: int = Field(16, ge=4, description="Isochrone fit: emcee walkers")
    fit_steps: int = Field(120, ge=20, description="Isochrone fit: emcee steps per walker")
    fit_burn: int = Field(40, ge=0, description="Isochrone fit: burn-in steps discarded")
    fit_max_steps: int = Field(1200, ge=0, description="Isochrone fit: cap of the chain "
                                                       "(sampled to 50 autocorrelation times)")
    fit_seed: int = Field(0, description="Isochrone fit: random seed")
    from_stage: str | None = Field(None, description=f"First stage: one of {STAGE_NAMES}")
    to_stage: str | None = Field(None, description="Last stage")


@flow(name="tgp-full-run", log_prints=True)
def full_run_flow(params: FullRunParams) -> dict[str, Any]:
    """Run every built stage of the pipeline on one night and record it."""
    logger = get_run_logger()
    to_stage = "plan" if params.plan_only else params.to_stage
    stages = stage_range(params.from_stage, to_stage)
    if params.reference_catalog is None and params.gaia_file:
        # The Gaia table of the field is also the plate solver's reference catalogue.
        params = params.model_copy(update={"reference_catalog": params.gaia_file})
    session = open_session(params.data, params.out, params.profile,
                           params.model_dump(mode="json"))
    logger.info("run %s: stages %s -> %s; products in %s", session.run_id, stages[0],
                stages[-1], session.run_dir)
    timings: dict[str, float] = {}
    result: dict[str, Any] = {"run_id": session.run_id, "run_dir": str(session.run_dir),
                              "db_url": session.db_url, "not_built": [], "failed": {},
                              "timings": timings}
    inv: Inventory | None = None
    plan: CalibrationPlan | None = None
    cal = reg = sol = phot = None
    image_stages = ("calibrate", "register", "solve", "mosaic", "photometry", "photcal")
    catalog_stages = ("catalogs", "membership", "crossmatch", "isochrone_fit")
    with closing_failed_run(session, with_type=True):
        for name in stages:
            t0 = time.perf_counter()
            # A stage started partway through the chain first redoes the stages it needs;
            # their products are found in the database and reused, not recomputed.
            if inv is None and name in ("inventory", "plan", *image_stages, *catalog_stages):
                inv = run_inventory_stage(session, params)
                result["inventory"] = inv.to_payload()
            if plan is None and name in ("plan", *image_stages):
                plan = run_plan_stage(session, params, inv)
                result["plan"] = plan.to_dict()
            if cal is None and name in image_stages:
                cal = run_calibrate_stage(session, params, inv, plan)
                result["calibration"] = cal.to_dict()
            if reg is None and name in image_stages[1:]:
                reg = run_register_stage(session, params, cal, inv)
                result["registration"] = reg.to_dict()
            if sol is None and name in image_stages[2:]:
                sol = run_solve_stage(session, params, reg)
                result["solve"] = sol.to_dict()
                if getattr(sol, "status", "ok") == "failed":
                    result["failed"]["solve"] = sol.message
                raise_alarms(session, solve_alarms(sol.solutions, _stack_scales(params, reg)))
            if phot is None and name in ("photometry", "photcal"):
                phot = run_photometry_stage(session, params, reg, sol, inv)
                result["photometry"] = phot.to_dict()
            blocked = [d for d in DEPENDS.get(name, ()) if d in result["failed"]]
            if blocked:
                message = f"stage '{name}' skipped: it needs '{blocked[0]}', which failed"
                session.db.stage_not_built(session.run_id, name, message)
                logger.warning(message)
                result["failed"][name] = message
            elif name in catalog_stages and "catalogs" not in result:
                # A catalogue service that is down fails these stages, not the night.
                try:
                    result["catalogs"] = run_catalogs_stage(session, inv, params.gaia_file,
                                                            params.gaia_release, params.members)
                except Exception as exc:  # noqa: BLE001 - recorded by recorded_stage too
                    result["failed"]["catalogs"] = f"{type(exc).__name__}: {exc}"
                    logger.error("catalogs failed: %s", exc)
            if name != "catalogs" and "catalogs" in result["failed"] and name in catalog_stages:
                result["failed"].setdefault(
                    name, f"stage '{name}' skipped: it needs 'catalogs', which failed")
            elif name in ("membership", "crossmatch", "isochrone_fit") \
                    and "membership" not in result:
                if params.members:
                    result["membership"] = {
                        cluster: _membership_outcome(out) for cluster, out in
                        run_published_membership_stage(session, params.members,
                                                       sorted(result["catalogs"])).items()}
                else:
                    result["membership"] = {
                        cluster: _membership_outcome(run_membership_stage(
                            session, cat["path"], (cat["footprint"]["ra_deg"],
                                                   cat["footprint"]["dec_deg"]),
                            session.run_dir / "membership" / cluster,
                            cat["footprint"]["radius_deg"]))
                        for cluster, cat in result["catalogs"].items()}
            if name in ("crossmatch", "isochrone_fit") and "crossmatch" not in result \
                    and "catalogs" in result:
                result["crossmatch"] = _crossmatch(session, inv, result)
            if name in result["failed"] or name in ("calibrate", "register", "solve",
                                                    "photometry", "catalogs", "membership",
                                                    "crossmatch"):
                pass  # failed and recorded, or run above as a prerequisite
            elif name == "photcal":
                result["photcal"] = run_photcal_stage(session, params, phot, cal, inv,
                                                      sol).to_dict()
            elif name == "report":
                # the report describes the run so far; a broken report never fails the night
                try:
                    result["report"] = run_report_stage(session, result)["path"]
                except Exception as exc:  # noqa: BLE001 - recorded by the stage itself
                    result["failed"]["report"] = f"{type(exc).__name__}: {exc}"
                    logger.error("report failed: %s", exc)
            elif name == "mosaic":
                result["mosaic"] = run_mosaic_stage(session, params, reg, sol).to_dict()
            elif name == "isochrone_fit":
                result["isochrone_fit"] = _fit_clusters(session, params, result)
                if not result["isochrone_fit"]:
                    message = "isochrone fit: no cluster with members to fit"
                    session.db.stage_finished(session.db.stage_started(session.run_id, name),
                                              "failed", message=message)
                    logger.warning(message)
                    result["failed"][name] = message
            elif name not in BUILT:
                message = f"stage '{name}' is not built yet: no products"
                session.db.stage_not_built(session.run_id, name, message)
                logger.warning(message)
                result["not_built"].append(name)
            timings[name] = round(time.perf_counter() - t0, 3)
    result["alarms"] = session.db.alarms(session.run_id)
    status = "partial" if result["not_built"] or result["failed"] else "succeeded"
    notes = ([f"not built yet: {', '.join(result['not_built'])}"] if result["not_built"] else []) \
        + ([f"failed: {', '.join(result['failed'])}"] if result["failed"] else [])
    session.db.finish_run(session.run_id, status, message="; ".join(notes) or None)
    result["status"] = status
    create_markdown_artifact(
        "# tgp run " + session.run_id + "\n\n| stage | status | seconds |\n|---|---|---|\n"
        + "\n".join(f"| {n} | {_state(n, result)} | {timings.get(n, 0):.2f} |" for n in stages),
        key="run-summary", description="Stages of this run")
    return result


def _stack_scales(params: FullRunParams, reg: Any) -> dict[str, float]:
    """Pixel scale (arcsec) of each stack, from the parameters or its instrument profile."""
    out = {}
    for sid, st in reg.stacks.items():
        try:
            out[sid] = _scale(params, st.get("profile"))
        except Exception:  # noqa: BLE001 - no scale: the alarm uses arcseconds only
            continue
    return out


def _state(stage: str, result: dict[str, Any]) -> str:
    """'done', 'not built yet' or 'failed' for a stage of a run's result."""
    if stage in result["not_built"]:
        return "not built yet"
    return "failed" if stage in result["failed"] else "done"


def _crossmatch(session: Any, inv: Inventory, result: dict[str, Any]) -> dict[str, Any]:
    """The crossmatch stage, or its record as skipped when there is no calibrated catalogue
    (a run started after photcal, or a photcal that failed)."""
    cats = {c: v for c, v in ((result.get("photcal") or {}).get("catalogues") or {}).items()
            if v.get("ecsv")}
    if not cats:
        message = ("no calibrated catalogue of the night's own photometry (photcal did not run "
                   "in this run, or failed): the cluster is fitted to Gaia photometry only")
        ev = session.db.stage_started(session.run_id, "crossmatch")
        session.db.stage_finished(ev, "skipped", message=message)
        get_run_logger().warning("crossmatch skipped: %s", message)
        return {}
    return run_crossmatch_stage(session, inv, cats, result["catalogs"],
                                result.get("membership") or {})


def _fit_clusters(session: Any, params: FullRunParams, result: dict[str, Any]
                  ) -> dict[str, Any]:
    """Fit isochrones to every cluster: our own photometry first, Gaia's as the check.

    - **The cluster's parameters** come from the night's calibrated U, B, V matched to Gaia
      (``catalogs/<cluster>_matched.ecsv``): V vs B-V and U-B vs B-V, the members weighted by
      their probabilities, with a distance prior from the members' parallaxes.
    - **The Gaia check**: the members' Gaia G, BP, RP fitted the same way, independently.
    - The two are compared per parameter (difference over the combined total error); a
      disagreement is an alarm.

    Without a matched catalogue (no photcal, no Gaia match) the Gaia fit is all there is, and
    it says so. One cluster's failure never stops the others.
    """
    logger = get_run_logger()
    fits: dict[str, Any] = {}
    clusters = sorted(set(result.get("membership", {})) | set(result.get("crossmatch") or {}))
    for cluster in clusters:
        m = result.get("membership", {}).get(cluster) or {}
        matched = matched_path(result, cluster)
        entry: dict[str, Any] = {"status": "failed", "fits": {}}
        common = {"n_walkers": params.fit_walkers, "n_steps": params.fit_steps,
                  "n_burn": params.fit_burn, "max_steps": params.fit_max_steps,
                  "seed": params.fit_seed}
        runs = []
        if matched:
            runs.append(("johnson", matched, None, session.run_dir / "fit" / cluster))
        if m.get("status") == "ok" and m.get("members") and cluster in result.get("catalogs",
                                                                                   {}):
            gaia_dir = session.run_dir / "fit" / (f"{cluster}_gaia" if matched else cluster)
            runs.append(("gaia", result["catalogs"][cluster]["path"], m["members"], gaia_dir))
        if not runs:
            logger.info("isochrone fit: %s skipped (%s)", cluster,
                        m.get("message") or "no matched catalogue and no members")
            continue
        for system, catalog, members, out_dir in runs:
            fp = IsochroneFitParams(catalog=str(catalog), members=members, out=str(out_dir),
                                    system=system, **common)
            try:
                out = run_isochrone_fit_stage(session, fp.catalog, fp.members, out_dir, fp)
            except Exception as exc:  # noqa: BLE001 - one fit never kills the night
                logger.error("isochrone fit of %s (%s) failed: %s", cluster, system, exc)
                entry["fits"][system] = {"status": "failed",
                                         "message": f"{type(exc).__name__}: {exc}"}
                continue
            entry["fits"][system] = {"status": "ok", "fit_json": out["fit_json"],
                                     "fit_h5": out["fit_h5"], "figures": out["figures"],
                                     "summary": out["summary"],
                                     "warnings": out.get("warnings", [])}
        ok = {k: v for k, v in entry["fits"].items() if v["status"] == "ok"}
        if not ok:
            entry["message"] = "; ".join(f"{k}: {v['message']}" for k, v in entry["fits"].items())
            fits[cluster] = entry
            continue
        primary = "johnson" if "johnson" in ok else "gaia"
        entry.update({"status": "ok", "photometry": primary, **{k: ok[primary][k] for k in
                      ("fit_json", "fit_h5", "figures", "summary", "warnings")}})
        if primary == "gaia":
            entry["note"] = ("fitted to the members' Gaia photometry: the night's own "
                             "photometry was not available (see the crossmatch stage)")
        if len(ok) == 2:
            entry["comparison"] = _compare(ok["johnson"]["fit_json"], ok["gaia"]["fit_json"])
            alarms = _comparison_alarms(cluster, entry["comparison"])
            raise_alarms(session, alarms)
        fits[cluster] = entry
    return fits


def _compare(johnson_json: str, gaia_json: str) -> dict[str, Any]:
    """The Johnson and Gaia fits compared parameter by parameter."""
    import json

    from tgpcore.fitting.compare import compare_fits

    a = json.loads(Path(johnson_json).read_text())
    b = json.loads(Path(gaia_json).read_text())
    return compare_fits(a, b, labels=("our U, B, V", "Gaia G, BP, RP"))


def _comparison_alarms(cluster: str, comparison: dict[str, Any]) -> list[Any]:
    """An alarm for each parameter on which our fit and Gaia's disagree."""
    from tgpcore.qc import Alarm

    out = []
    for name, c in comparison.get("parameters", {}).items():
        if c.get("alarm"):
            out.append(Alarm(
                "fit_disagreement", "isochrone_fit", f"{cluster} {name}", float(c["ratio"]),
                float(comparison.get("threshold", 2.0)),
                f"{name}: our U, B, V give {c['a']:.3f} ± {c['err_a']:.3f}, Gaia gives "
                f"{c['b']:.3f} ± {c['err_b']:.3f} ({c['ratio']:.1f} combined sigma apart)"))
    return out


def _membership_outcome(out: dict[str, Any]) -> dict[str, Any]:
    """The part of the membership stage's answer that the run result keeps."""
    return {k: out.get(k) for k in ("status", "message", "members", "summary_path", "figures")}


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
    """Tell the user what was done and where everything is."""
    if "plan" in result:
        print(format_plan(CalibrationPlan.from_dict(result["plan"])))
        print()
    print(f"run {result['run_id']}: {result['status']}")
    for name, message in result["failed"].items():
        print(f"  {name} failed: {message}")
    if "calibration" in result:
        cal = result["calibration"]
        print(f"calibration: {len(cal['calibrated'])} frames calibrated, {len(cal['rejected'])} "
              f"skipped, {len(cal['masters'])} masters ({cal['reused']} products reused)")
        for path, reason in cal["rejected"].items():
            print(f"  skipped {path}: {reason}")
    if "registration" in result:
        reg = result["registration"]
        print(f"registration: {len(reg['stacks'])} stacks, {len(reg['rejected'])} frames "
              f"rejected, {len(reg['failed'])} stacks failed")
        for path, reason in reg["rejected"].items():
            print(f"  rejected {path}: {reason}")
    if "solve" in result:
        for sid, sol in result["solve"]["solutions"].items():
            print(f"  solved {sid}: " + ", ".join(f"{k}={v}" for k, v in sol.items()
                                                   if k in ("solver", "n_matched", "rms_arcsec")))
        for sid, reason in result["solve"]["failed"].items():
            print(f"  NOT solved {sid}: {reason}")
    if "mosaic" in result:
        for mid, m in result["mosaic"]["mosaics"].items():
            print(f"  mosaic {mid}: {m.get('path')}")
    if "photometry" in result:
        ph = result["photometry"]
        print(f"photometry: {len(ph['stacks'])} stacks measured, {len(ph['failed'])} failed")
        for sid, reason in ph["failed"].items():
            print(f"  photometry failed for {sid}: {reason}")
    if "photcal" in result:
        pc = result["photcal"]
        for key, s in pc["solutions"].items():
            print(f"  photometric solution {key}: " + ", ".join(
                f"{k}={s[k]:.4f}" for k in ("zp", "k", "c") if isinstance(s.get(k), float)))
        for key, reason in pc["failed"].items():
            print(f"  photometric calibration failed for {key}: {reason}")
        for cluster, c in pc["catalogues"].items():
            print(f"  calibrated catalogue {cluster}: {c.get('ecsv')}")
    for cluster, m in result.get("membership", {}).items():
        print(f"membership {cluster}: {m['message']}")
        print(f"  members: {m['members']}; summary: {m['summary_path']}")
    for cluster, f in result.get("isochrone_fit", {}).items():
        if f["status"] != "ok":
            print(f"isochrone fit {cluster}: FAILED: {f.get('message')}")
            continue
        label = {"johnson": "our U, B, V", "gaia": "Gaia G, BP, RP"}
        for system, fit in f["fits"].items():
            if fit["status"] != "ok":
                print(f"isochrone fit {cluster} ({label[system]}): FAILED: {fit['message']}")
                continue
            s = fit["summary"]
            role = "the cluster" if system == f["photometry"] else "check"
            print(f"isochrone fit {cluster} ({label[system]}; {role}): log age "
                  f"{s['log_age']:.3f} ± {s['log_age_err']:.3f}, (m-M)0 {s['dm']:.3f} ± "
                  f"{s['dm_err']:.3f}, E(B-V) {s['ebv']:.3f} ± {s['ebv_err']:.3f}, [M/H] "
                  f"{s['mh']:+.3f} ± {s['mh_err']:.3f}")
            print(f"  fit: {fit['fit_json']}")
        if f.get("note"):
            print(f"  note: {f['note']}")
        if f.get("comparison"):
            print("  our photometry against Gaia's: " + "; ".join(f["comparison"]["summary"]))
    for name, desc in STAGES:
        if name in result["timings"]:
            state = _state(name, result).upper() if _state(name, result) != "done" else "done"
            print(f"  {name:<14} {state:<14} {result['timings'][name]:7.2f} s  {desc}")
    alarms = result.get("alarms") or []
    if alarms:
        print(f"ALARMS ({len(alarms)}): read these before the science")
        for a in alarms:
            print(f"  {a['level'].upper()} [{a['stage']}] {a['subject']}: {a['message']}")
    print(f"products: {result['run_dir']}")
    print(f"run database: {result['db_url']}")
    if not plan_only:
        if result.get("report"):
            print(f"report: {result['report']}")
        else:
            print("report: none (the 'report' stage is not built yet or was not run)")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
