"""Flow: photometric calibration of a night (``python -m flows.photcal --data DIR
--standards FILE``).

Stage function for ``flows.full_run``: :func:`run_photcal_stage` (photometry outcome +
calibrated frames of the standard fields -> calibrated U, B, V catalogue per cluster).

With standards: every calibrated frame of a standard field is measured (one task per frame;
its WCS from the solve stage), its standards identified by position, and
``m_std - m_inst = ZP - k X + c colour`` fitted per filter and night by weighted least squares
with outlier rejection (one task per filter). A filter with too few standards fails alone,
with its reason; without a solution from standards, a filter falls back to the reference
catalogue of the field when one is given (ZP + colour term; method and transformation
recorded). Calibrated catalogues go into the run's ``tgp.h5`` and are exported as FITS and
ECSV; QC figures show the residuals against airmass and colour.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from astropy.table import Table
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import Field

from flows.photometry import PhotometryParams, run_stages_to_photometry
from flows.runners import RunnerSettings, make_task_runner
from flows.session import (
    RunSession,
    closing_failed_run,
    open_session,
    raise_alarms,
    recorded_stage,
)
from flows.settings import default_out_root
from tasks.photcal import calibrate_task, fit_filter_task, reference_task, standards_task
from tgpcore import __version__
from tgpcore.io.checksum import product_key, sha256_file
from tgpcore.photcal.fit import CalibrationSolution
from tgpcore.plots.photcal import residuals_figure
from tgpcore.qc import photcal_alarms

PHOTCAL_PARAMS_VERSION = 2  # 2: standards through the program stars' apertures; GLS fit


class PhotcalParams(PhotometryParams):
    """Parameters of the photometric calibration (plus those of the stages before it)."""

    standards_catalog: str | None = Field(
        None, description="Standard stars: Landolt .dat file or a table with ra, dec, V, B_V, "
                          "U_B (e.g. the simulator's truth/standards.ecsv)")
    photometric_reference: str | None = Field(
        None, description="Reference catalogue of the field (Gaia, APASS, SDSS) for filters "
                          "without standards")
    transformation: str | None = Field(
        None, description="johnson | sdss_jester2005 | gaia_riello2021 (default: from the "
                          "reference catalogue's columns)")
    min_standards: int = Field(5, ge=3, description="Fewest standard measurements per filter")
    min_airmass_range: float = Field(0.2, description="Fit k only over this airmass range")
    standards_radius_arcsec: float = Field(2.0, description="Standards cross-id radius")
    reference_bands: list[str] = Field(["B", "V"], description="Bands the reference calibrates")


@dataclass
class PhotcalOutcome:
    """Calibration solutions (``night/filter`` -> solution), failures and catalogues."""

    solutions: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    catalogues: dict[str, dict[str, Any]] = field(default_factory=dict)
    standards: dict[str, dict[str, Any]] = field(default_factory=dict)  # frame -> summary
    plots: list[str] = field(default_factory=list)
    sky_mag_arcsec2: dict[str, float] = field(default_factory=dict)  # stack id -> sky

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


def night_of(mjd: float | None) -> str:
    """Label of the observing night of an MJD (the MJD at the previous noon UT)."""
    if mjd is None or not math.isfinite(float(mjd)):
        return "night"
    return f"MJD{int(math.floor(float(mjd) - 0.5))}"


def _frame_wcs_paths(sol: Any) -> dict[str, str]:
    """Frame file stem -> ``.wcs`` file written by the solve stage."""
    out: dict[str, str] = {}
    if sol is None:
        return out
    for s in (sol.solutions if hasattr(sol, "solutions") else sol.get("solutions", {})).values():
        for p in s.get("frame_wcs", []) or []:
            out[Path(p).name.rsplit(".", 1)[0]] = p
    return out


def _records(records: Any) -> list[dict[str, Any]]:
    if records is None:
        return []
    if hasattr(records, "records"):
        return [asdict(r) for r in records.records]
    return [dict(r) if not hasattr(r, "__dataclass_fields__") else asdict(r)
            for r in (records.values() if isinstance(records, dict) else records)]


def run_photcal_stage(session: RunSession, params: PhotcalParams, photometry: Any,
                      calibration: Any, records: Any, sol: Any = None) -> PhotcalOutcome:
    """Calibrate the run's cluster catalogues, inside an open run.

    Parameters
    ----------
    session : RunSession
    params : PhotcalParams
    photometry : PhotometryOutcome
        ``clusters[name]['path']``: instrumental multi-band catalogues.
    calibration : CalibrationOutcome or mapping
        ``calibrated`` (raw path -> calibrated frame), for the standard-field frames.
    records : Inventory or mapping
        Inventory records (``kind``, ``filter``, ``airmass``, ``mjd``).
    sol : SolveOutcome, optional
        Its ``frame_wcs`` files give the standard frames' WCS.

    Returns
    -------
    PhotcalOutcome
        ``solutions['<night>/<filter>']`` (ZP, k, c, errors, covariance, rms, method),
        ``failed`` (filter or cluster -> reason), ``catalogues[cluster]`` (``ecsv``, ``fits``,
        ``hdf5``, ``hdf5_key``, ``n_calibrated`` per band), ``standards`` (per frame) and
        ``plots``.
    """
    logger = get_run_logger()
    db, run_id = session.db, session.run_id
    out = PhotcalOutcome()
    calibrated = dict(calibration["calibrated"] if isinstance(calibration, dict)
                      else calibration.calibrated)
    clusters = dict(photometry.clusters if hasattr(photometry, "clusters")
                    else photometry.get("clusters", {}))
    wcs_paths = _frame_wcs_paths(sol)
    plot_dir = session.run_dir / "plots"
    cat_dir = session.run_dir / "catalogs"
    h5 = str(session.run_dir / "tgp.h5")
    cfg = params.photometry_config()
    cfg["psf"] = "off"
    with recorded_stage(session, "photcal") as counters:
        # 1. standard stars, one task per frame
        futs = {}
        if params.standards_catalog:
            for r in _records(records):
                if r.get("kind") != "standard" or r.get("status") != "accepted":
                    continue
                cal_path = calibrated.get(r["path"])
                if cal_path is None:
                    continue
                stem = Path(r["path"]).name.split(".")[0]
                futs[r["path"]] = standards_task.submit(
                    cal_path, params.standards_catalog, wcs_paths.get(stem), r.get("airmass"),
                    r.get("filter"), cfg, params.standards_radius_arcsec, night_of(r.get("mjd")))
        rows: list[dict[str, Any]] = []
        for raw, fut in futs.items():
            try:
                m = fut.result()
            except Exception as exc:  # noqa: BLE001 - one frame never stops the night
                m = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", "rows": []}
            out.standards[Path(raw).name] = {k: m.get(k) for k in (
                "status", "reason", "filter", "airmass", "n_detected", "n_matched")}
            out.standards[Path(raw).name]["n_used"] = len(m.get("rows", []))
            rows += m.get("rows", [])
        # 2. one fit per (night, filter)
        groups = sorted({(r["night"], r["filter"]) for r in rows})
        if params.standards_catalog:
            seen = {(r.get("filter"), night_of(r.get("mjd"))) for r in _records(records)
                    if r.get("kind") == "standard" and r.get("status") == "accepted"}
            for f, n in sorted(seen):
                if (n, f) not in groups:
                    out.failed[f"{n}/{f}"] = "no standard star measured"
        ffuts = {(n, f): fit_filter_task.submit([r for r in rows if r["night"] == n],
                                                f, params.min_standards,
                                                params.min_airmass_range)
                 for n, f in groups}
        for (n, f), fut in ffuts.items():
            try:
                s = fut.result()
            except Exception as exc:  # noqa: BLE001 - too few standards: this filter only
                out.failed[f"{n}/{f}"] = f"{type(exc).__name__}: {exc}"
                continue
            out.solutions[f"{n}/{f}"] = s
            inputs = {"frames": sorted({r["frame"] for r in rows if r["night"] == n
                                        and r["filter"] == f})}
            pkey = product_key("photcal", inputs, {"filter": f, "night": n,
                                                   "version": PHOTCAL_PARAMS_VERSION},
                               __version__)
            pid = db.record_product(run_id, "photcal_solution", pkey, None, None, inputs,
                                    {k: v for k, v in s.items() if k != "extra"}, __version__)
            db.add_qc(run_id, {f"{f}_zp": s["zp"], f"{f}_zp_err": s["zp_err"],
                               f"{f}_k": s["k"], f"{f}_k_err": s["k_err"], f"{f}_c": s["c"],
                               f"{f}_c_err": s["c_err"], f"{f}_rms": s["rms"],
                               f"{f}_n_standards": float(s["n_used"])}, product_id=pid)
        nights = sorted({n for n, _ in groups})
        for n in nights:
            sols = {k.split("/")[1]: CalibrationSolution.from_dict(v)
                    for k, v in out.solutions.items() if k.startswith(f"{n}/")}
            if sols:
                t = Table(rows=[r for r in rows if r["night"] == n])
                p = residuals_figure(t, sols, plot_dir / f"photcal_{n}.png",
                                     title=f"Standard-star calibration, {n}")
                out.plots.append(str(p))
        # 3. apply per cluster (standards, else reference catalogue)
        night_sols: dict[str, dict[str, Any]] = {}
        for key, s in sorted(out.solutions.items()):
            night_sols.setdefault(key.split("/")[1], s)  # one night per run in practice
        for cluster, cres in sorted(clusters.items()):
            sols = {f: s for f, s in night_sols.items() if f in cres.get("bands", [])}
            missing = [b for b in cres.get("bands", []) if b not in sols]
            if missing and params.photometric_reference:
                try:
                    ref = reference_task(cres["path"], params.photometric_reference,
                                         params.transformation,
                                         tuple(b for b in params.reference_bands
                                               if b in missing))
                except Exception as exc:  # noqa: BLE001
                    ref = {"solutions": {}, "failed": {"reference": f"{exc}"}, "matched": []}
                for b, s in ref["solutions"].items():
                    sols[b] = s
                    out.solutions[f"{cluster}/{b}"] = s
                for b, why in ref["failed"].items():
                    out.failed[f"{cluster}/{b}"] = why
                if ref["solutions"]:
                    p = residuals_figure(Table(rows=ref["matched"]),
                                         {b: CalibrationSolution.from_dict(s)
                                          for b, s in ref["solutions"].items()},
                                         plot_dir / f"photcal_{cluster}_reference.png",
                                         title=f"{cluster}: reference-catalogue calibration")
                    out.plots.append(str(p))
            if not sols:
                out.failed[cluster] = "no calibration for any band of the catalogue"
                continue
            try:
                res = calibrate_task(cres["path"], sols, str(cat_dir), f"{cluster}_calibrated",
                                     h5)
            except Exception as exc:  # noqa: BLE001
                out.failed[cluster] = f"{type(exc).__name__}: {exc}"
                continue
            res["methods"] = {b: s["method"] for b, s in sols.items()}
            out.catalogues[cluster] = res
            inputs = {"catalog": sha256_file(cres["path"])}
            pkey = product_key("calibrated_catalog", inputs,
                               {b: [s["zp"], s["k"], s["c"]] for b, s in sols.items()},
                               __version__)
            pid = db.record_product(run_id, "calibrated_catalog", pkey, res["ecsv"],
                                    res["checksum"], inputs, {"methods": res["methods"]},
                                    __version__)
            db.add_qc(run_id, {f"n_{b}": float(v) for b, v in res["n_calibrated"].items()},
                      product_id=pid)
        alarms = []
        for cluster, cres in sorted(clusters.items()):
            applied = {k.split("/")[1]: v for k, v in out.solutions.items()
                       if k.startswith(f"{cluster}/")} or night_sols
            stacks = {sid: r for sid, r in (getattr(photometry, "stacks", None) or {}).items()
                      if sid.split("/")[0] == cluster and r.get("status") == "ok"}
            found, sky = photcal_alarms({f"{cluster}/{k}": v for k, v in
                                         (cres.get("short_long") or {}).items()},
                                        stacks, applied)
            alarms += found
            out.sky_mag_arcsec2.update(sky)
            if sky:
                db.add_qc(run_id, {f"sky_mag_arcsec2:{k}": v for k, v in sky.items()})
        raise_alarms(session, alarms)
        counters.update({"solutions": len(out.solutions), "failed": len(out.failed),
                         "catalogues": len(out.catalogues), "standard_frames": len(futs),
                         "alarms": len(alarms)})
        logger.info("calibrated %d catalogues; solutions %s%s", len(out.catalogues),
                    ", ".join(sorted(out.solutions)) or "none",
                    ("; failed: " + "; ".join(f"{k}: {v}" for k, v in out.failed.items()))
                    if out.failed else "")
        table = [{"solution": k, "zp": round(s["zp"], 4), "zp_err": round(s["zp_err"], 4),
                  "k": round(s["k"], 4), "k_err": round(s["k_err"], 4),
                  "c": round(s["c"], 4), "c_err": round(s["c_err"], 4),
                  "rms": round(s["rms"], 4), "n": s["n_used"], "method": s["method"]}
                 for k, s in out.solutions.items()]
        md = [f"# Photometric calibration: {len(out.catalogues)} catalogues", ""]
        md += [f"- `{r['solution']}`: ZP {r['zp']}±{r['zp_err']}, k {r['k']}±{r['k_err']}, "
               f"c {r['c']}±{r['c_err']} ({r['n']} stars, rms {r['rms']}; {r['method']})"
               for r in table]
        md += [f"- `{k}` failed: {v}" for k, v in out.failed.items()]
        md += [f"- catalogue `{k}`: `{v['ecsv']}`, `{v['fits']}`, `{v['hdf5']}:{v['hdf5_key']}`"
               for k, v in out.catalogues.items()]
        md += [f"- QC figure: `{p}`" for p in out.plots]
        create_markdown_artifact("\n".join(md), key="photcal-summary")
        if table:
            create_table_artifact(table, key="photcal-solutions",
                                  description="Zero points, extinction and colour terms")
    return out


def photcal_step(night: Any) -> PhotcalOutcome:
    """Photometric calibration in a walk of the stage table."""
    return run_photcal_stage(night.session, night.params, night.get("photometry"),
                             night.get("calibrate"), night.get("inventory"), night.get("solve"))


@flow(name="tgp-photcal", log_prints=True)
def photcal_flow(params: PhotcalParams, run_id: str | None = None) -> dict[str, Any]:
    """A night from raw frames to calibrated catalogues (every stage up to photcal)."""
    session = open_session(params.data, params.out, params.profile,
                           params.model_dump(mode="json"), run_id=run_id)
    with closing_failed_run(session):
        night = run_stages_to_photometry(session, params)
        pc = run_photcal_stage(session, params, night.phot, night.cal, night.inv, night.sol)
    if run_id is None:
        session.db.finish_run(session.run_id, "succeeded")
    return {"run_id": session.run_id, "run_dir": str(session.run_dir),
            "registration": night.reg.to_dict(), "photometry": night.phot.to_dict(),
            "photcal": pc.to_dict()}


def main(argv: list[str] | None = None) -> int:
    """Command line: calibrated catalogues of a night."""
    ap = argparse.ArgumentParser(prog="python -m flows.photcal", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="raw night folder")
    ap.add_argument("--out", default=default_out_root(), help="output root")
    ap.add_argument("--profile", help="instrument profile name or TOML file")
    ap.add_argument("--reference-catalog", help="local reference catalogue for plate solving")
    ap.add_argument("--standards", help="standard-star catalogue (Landolt .dat or table)")
    ap.add_argument("--photometric-reference", help="reference catalogue of the field")
    ap.add_argument("--transformation", help="johnson | sdss_jester2005 | gaia_riello2021")
    ap.add_argument("--runner", choices=["dask", "threads"], default="dask")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    params = PhotcalParams(data=args.data, out=args.out, profile=args.profile,
                           reference_catalog=args.reference_catalog,
                           standards_catalog=args.standards,
                           photometric_reference=args.photometric_reference,
                           transformation=args.transformation,
                           runner=RunnerSettings(kind=args.runner, n_workers=args.workers))
    result = photcal_flow.with_options(task_runner=make_task_runner(params.runner))(params)
    pc = result["photcal"]
    for k, s in pc["solutions"].items():
        print(f"{k}: ZP {s['zp']:.4f}±{s['zp_err']:.4f}  k {s['k']:.4f}±{s['k_err']:.4f}  "
              f"c {s['c']:.4f}±{s['c_err']:.4f}  rms {s['rms']:.4f} ({s['n_used']} stars; "
              f"{s['method']})")
    for k, v in pc["failed"].items():
        print(f"{k}: failed: {v}")
    for c, v in pc["catalogues"].items():
        print(f"{c}: {v['n_stars']} stars -> {v['ecsv']}, {v['fits']}, "
              f"{v['hdf5']}:{v['hdf5_key']}")
    return 0 if pc["catalogues"] else 1


if __name__ == "__main__":
    sys.exit(main())
