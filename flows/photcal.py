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

import json
import sys
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from astropy.table import Table
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from flows.calibrate import CalibrateOptions
from flows.inventory import InventoryParams
from flows.photometry import PhotometryOptions
from flows.plan import PlanOptions
from flows.register import RegisterOptions
from flows.runner import Deferred, Item, StageRunner, collect, error_text, stage_run
from flows.session import (
    RunSession,
    raise_alarms,
)
from flows.stagecli import run_stage_cli
from flows.walk import run_stages
from tasks.photcal import calibrate_task, fit_filter_task, reference_task, standards_task
from tgpcore import __version__
from tgpcore.io.atomic import atomic_path
from tgpcore.io.checksum import product_key, sha256_file
from tgpcore.photcal.fit import CalibrationSolution
from tgpcore.photcal.plan import (
    StandardFrame,
    bands_by_solution,
    expected_fits,
    fit_groups,
    reference_bands,
    standard_frames,
)
from tgpcore.plots.photcal import residuals_figure
from tgpcore.qc import Alarm, photcal_alarms

PHOTCAL_PARAMS_VERSION = 2  # 2: standards through the program stars' apertures; GLS fit


class PhotcalOptions(BaseModel):
    """The photometric calibration's own options."""

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


class PhotcalParams(InventoryParams, PlanOptions, CalibrateOptions, RegisterOptions,
                    PhotometryOptions, PhotcalOptions):
    """Parameters of the photcal flow: the options of the stages it runs."""



@dataclass
class PhotcalOutcome:
    """Calibration solutions (``night/filter`` -> solution), failures and catalogues."""

    solutions: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    catalogues: dict[str, dict[str, Any]] = field(default_factory=dict)
    standards: dict[str, dict[str, Any]] = field(default_factory=dict)  # frame -> summary
    plots: list[str] = field(default_factory=list)
    sky_mag_arcsec2: dict[str, float] = field(default_factory=dict)  # stack id -> sky
    qc: dict[str, float] = field(default_factory=dict)       # the run's photcal QC figures
    alarms: list[dict[str, Any]] = field(default_factory=list)  # the stage's alarms

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


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
    clusters = dict(photometry.clusters if hasattr(photometry, "clusters")
                    else photometry.get("clusters", {}))
    calibrated = dict(calibration["calibrated"] if isinstance(calibration, dict)
                      else calibration.calibrated)
    recs = _records(records)
    frames = standard_frames(recs, calibrated) if params.standards_catalog else []
    wcs_paths = _frame_wcs_paths(sol)
    with stage_run(session, "photcal", "catalogues") as counts:
        item = Item("photcal", "photcal_outcome",
                    _photcal_inputs(params, clusters, frames, wcs_paths), _params_rec(params),
                    submit=partial(Deferred, partial(_calibrate_night, session, params, clusters,
                                                     photometry, frames, wcs_paths, recs)))
        done = StageRunner(session, counts).run([item])["photcal"]
        if not done.ok:
            raise RuntimeError(done.reason)
        out = PhotcalOutcome(**{k: done.result[k] for k in PhotcalOutcome.__dataclass_fields__
                                if k in done.result})
        if done.reused:      # a reused calibration still tells this run its figures and alarms
            if out.qc:
                session.db.add_qc(session.run_id, out.qc)
            raise_alarms(session, [Alarm(**a) for a in out.alarms])
        counts.total, counts.done = len(clusters), len(out.catalogues)
        counts.failed, counts.reused = len(out.failed), len(out.catalogues) * done.reused
        counts.extra.update({"solutions": len(out.solutions), "standard_frames": len(frames)})
        _photcal_report(out)
    return out


def _photcal_inputs(params: PhotcalParams, clusters: dict[str, Any],
                    frames: list[StandardFrame], wcs_paths: dict[str, str]) -> dict[str, Any]:
    """What the night's calibration is made from (its key): catalogues, standard frames and
    their WCS, the standards and the reference catalogue."""
    def digest(path: str | None) -> str | None:
        return sha256_file(path) if path and Path(path).is_file() else None

    return {"catalogs": {c: r.get("checksum") or digest(r["path"]) for c, r in clusters.items()},
            "frames": sorted(digest(f.calibrated) for f in frames),
            "wcs": sorted(filter(None, (digest(wcs_paths.get(Path(f.raw).name.split(".")[0]))
                                        for f in frames))),
            "standards": digest(params.standards_catalog),
            "reference": digest(params.photometric_reference)}


def _params_rec(params: PhotcalParams) -> dict[str, Any]:
    return {**params.photometry_config(), "psf": "off", "min_standards": params.min_standards,
            "min_airmass_range": params.min_airmass_range,
            "standards_radius_arcsec": params.standards_radius_arcsec,
            "transformation": params.transformation, "reference_bands": params.reference_bands,
            "version": PHOTCAL_PARAMS_VERSION}


def _calibrate_night(session: RunSession, params: PhotcalParams, clusters: dict[str, Any],
                     photometry: Any, frames: list[StandardFrame], wcs_paths: dict[str, str],
                     recs: list[dict[str, Any]]) -> dict[str, Any]:
    """The night's calibration: standards, fits per night and filter, each cluster's
    catalogue calibrated; the outcome is written as ``photcal/outcome.json`` (the product)."""
    pc = _Photcal(session, params)
    rows = pc.measure_standards(frames, wcs_paths)
    pc.fit_standards(rows, expected_fits(recs) if params.standards_catalog else [])
    night_sols = bands_by_solution(pc.out.solutions)
    for cluster, cres in sorted(clusters.items()):
        pc.calibrate_cluster(cluster, cres, night_sols)
    pc.alarms(clusters, photometry, night_sols)
    path = session.run_dir / "photcal" / "outcome.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(pc.out.to_dict(), indent=1, default=str))
    return {**pc.out.to_dict(), "path": str(path), "checksum": sha256_file(path)}


class _Photcal:
    """The photometric calibration's work: standards, fits, the catalogues calibrated."""

    def __init__(self, session: RunSession, params: PhotcalParams) -> None:
        self.session, self.params = session, params
        self.out = PhotcalOutcome()
        self.plot_dir = session.run_dir / "plots"

    def measure_standards(self, frames: list[StandardFrame], wcs_paths: dict[str, str]
                          ) -> list[dict[str, Any]]:
        """Measure the standards of every standard-field frame (one task each)."""
        cfg = {**self.params.photometry_config(), "psf": "off"}
        futs = {f.raw: standards_task.submit(
            f.calibrated, self.params.standards_catalog,
            wcs_paths.get(Path(f.raw).name.split(".")[0]), f.airmass, f.filter, cfg,
            self.params.standards_radius_arcsec, f.night) for f in frames}
        rows: list[dict[str, Any]] = []
        for raw, fut in futs.items():
            m, reason = collect(fut)
            if reason is not None:  # one frame never stops the night
                m = {"status": "failed", "reason": reason, "rows": []}
            self.out.standards[Path(raw).name] = {k: m.get(k) for k in (
                "status", "reason", "filter", "airmass", "n_detected", "n_matched")}
            self.out.standards[Path(raw).name]["n_used"] = len(m.get("rows", []))
            rows += m.get("rows", [])
        return rows

    def fit_standards(self, rows: list[dict[str, Any]], expected: list[tuple[str, str]]) -> None:
        """One fit per (night, filter); a filter without standards fails alone."""
        groups = fit_groups(rows)
        for n, f in expected:
            if (n, f) not in groups:
                self.out.failed[f"{n}/{f}"] = "no standard star measured"
        futs = {(n, f): fit_filter_task.submit([r for r in rows if r["night"] == n], f,
                                               self.params.min_standards,
                                               self.params.min_airmass_range)
                for n, f in groups}
        for (n, f), fut in futs.items():
            s, reason = collect(fut)
            if reason is not None:  # too few standards: this filter only
                self.out.failed[f"{n}/{f}"] = reason
                continue
            self.out.solutions[f"{n}/{f}"] = s
            self._record_solution(n, f, s, sorted({r["frame"] for r in rows
                                                   if r["night"] == n and r["filter"] == f}))
        for n in sorted({n for n, _ in groups}):
            sols = {k.split("/")[1]: CalibrationSolution.from_dict(v)
                    for k, v in self.out.solutions.items() if k.startswith(f"{n}/")}
            if sols:
                p = residuals_figure(Table(rows=[r for r in rows if r["night"] == n]), sols,
                                     self.plot_dir / f"photcal_{n}.png",
                                     title=f"Standard-star calibration, {n}")
                self.out.plots.append(str(p))

    def _record_solution(self, n: str, f: str, s: dict[str, Any], frames: list[str]) -> None:
        db, run_id = self.session.db, self.session.run_id
        inputs = {"frames": frames}
        pkey = product_key("photcal", inputs, {"filter": f, "night": n,
                                               "version": PHOTCAL_PARAMS_VERSION}, __version__)
        pid = db.record_product(run_id, "photcal_solution", pkey, None, None, inputs,
                                {k: v for k, v in s.items() if k != "extra"}, __version__)
        qc = {f"{f}_zp": s["zp"], f"{f}_zp_err": s["zp_err"], f"{f}_k": s["k"],
              f"{f}_k_err": s["k_err"], f"{f}_c": s["c"], f"{f}_c_err": s["c_err"],
              f"{f}_rms": s["rms"], f"{f}_n_standards": float(s["n_used"])}
        db.add_qc(run_id, qc, product_id=pid)
        self.out.qc.update(qc)

    def reference(self, cluster: str, cres: dict[str, Any], bands: tuple[str, ...]
                  ) -> dict[str, Any]:
        """Solutions of the bands the standards left, from the field's reference catalogue."""
        p = self.params
        try:
            ref = reference_task(cres["path"], p.photometric_reference, p.transformation, bands)
        except Exception as exc:  # noqa: BLE001
            ref = {"solutions": {}, "failed": {"reference": f"{exc}"}, "matched": []}
        for b, s in ref["solutions"].items():
            self.out.solutions[f"{cluster}/{b}"] = s
        for b, why in ref["failed"].items():
            self.out.failed[f"{cluster}/{b}"] = why
        if ref["solutions"]:
            fig = residuals_figure(Table(rows=ref["matched"]),
                                   {b: CalibrationSolution.from_dict(s)
                                    for b, s in ref["solutions"].items()},
                                   self.plot_dir / f"photcal_{cluster}_reference.png",
                                   title=f"{cluster}: reference-catalogue calibration")
            self.out.plots.append(str(fig))
        return ref["solutions"]

    def calibrate_cluster(self, cluster: str, cres: dict[str, Any],
                          night_sols: dict[str, Any]) -> None:
        """Apply the solutions to a cluster's catalogue (standards, else the reference)."""
        bands = cres.get("bands", [])
        sols = {f: s for f, s in night_sols.items() if f in bands}
        ref_bands = reference_bands(bands, sols, self.params.reference_bands,
                                    bool(self.params.photometric_reference))
        if ref_bands:
            sols.update(self.reference(cluster, cres, ref_bands))
        if not sols:
            self.out.failed[cluster] = "no calibration for any band of the catalogue"
            return
        run_dir = self.session.run_dir
        try:
            res = calibrate_task(cres["path"], sols, str(run_dir / "catalogs"),
                                 f"{cluster}_calibrated", str(run_dir / "tgp.h5"))
        except Exception as exc:  # noqa: BLE001
            self.out.failed[cluster] = error_text(exc)
            return
        res["methods"] = {b: s["method"] for b, s in sols.items()}
        self.out.catalogues[cluster] = res
        db, run_id = self.session.db, self.session.run_id
        inputs = {"catalog": sha256_file(cres["path"])}
        pkey = product_key("calibrated_catalog", inputs,
                           {b: [s["zp"], s["k"], s["c"]] for b, s in sols.items()}, __version__)
        pid = db.record_product(run_id, "calibrated_catalog", pkey, res["ecsv"], res["checksum"],
                                inputs, {"methods": res["methods"]}, __version__)
        qc = {f"n_{b}": float(v) for b, v in res["n_calibrated"].items()}
        db.add_qc(run_id, qc, product_id=pid)
        self.out.qc.update(qc)

    def alarms(self, clusters: dict[str, Any], photometry: Any, night_sols: dict[str, Any]
               ) -> None:
        """Short/long offsets, sky brightness and the solutions' alarms, per cluster."""
        alarms = []
        for cluster, cres in sorted(clusters.items()):
            applied = {k.split("/")[1]: v for k, v in self.out.solutions.items()
                       if k.startswith(f"{cluster}/")} or night_sols
            stacks = {sid: r for sid, r in (getattr(photometry, "stacks", None) or {}).items()
                      if sid.split("/")[0] == cluster and r.get("status", "ok") == "ok"}
            found, sky = photcal_alarms({f"{cluster}/{k}": v for k, v in
                                         (cres.get("short_long") or {}).items()},
                                        stacks, applied)
            alarms += found
            self.out.sky_mag_arcsec2.update(sky)
            if sky:
                qc = {f"sky_mag_arcsec2:{k}": v for k, v in sky.items()}
                self.session.db.add_qc(self.session.run_id, qc)
                self.out.qc.update(qc)
        raise_alarms(self.session, alarms)
        self.out.alarms = [asdict(a) for a in alarms]


def _photcal_report(out: PhotcalOutcome) -> None:
    """Log line and the Prefect artifacts of the photcal stage."""
    get_run_logger().info("calibrated %d catalogues; solutions %s%s", len(out.catalogues),
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


def photcal_step(night: Any) -> PhotcalOutcome:
    """Photometric calibration in a walk of the stage table."""
    return run_photcal_stage(night.session, night.params, night.get("photometry"),
                             night.get("calibrate"), night.get("inventory"), night.get("solve"))


@flow(name="tgp-photcal", log_prints=True)
def photcal_flow(params: PhotcalParams, run_id: str | None = None) -> dict[str, Any]:
    """A night from raw frames to calibrated catalogues (every stage up to photcal)."""
    return run_stages(params, ["solve", "photcal"], run_id).result


def main(argv: list[str] | None = None) -> int:
    """Command line: calibrated catalogues of a night."""
    result = run_stage_cli(argv, module="photcal", doc=__doc__, params_cls=PhotcalParams,
                           flow_fn=photcal_flow, runner="dask",
                           options=("reference_catalog", "standards_catalog",
                                    "photometric_reference", "transformation"))
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
