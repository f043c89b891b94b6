"""Flow: photometry of the stacks of a night (``python -m flows.photometry --data DIR``).

Stage function for ``flows.full_run``: :func:`run_photometry_stage` (registration + solve
outcomes -> one catalogue per stack, one instrumental multi-band catalogue per cluster).

One task per stack: background, detection, FWHM, aperture photometry with local backgrounds,
curve-of-growth correction, PSF photometry for blended stars, flags. A stack where no star is
found fails alone (recorded with its reason); the cluster catalogue is built from the rest.
Standard-star fields are left to the calibration stage (it measures their single frames,
each at its own airmass).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import Field

from flows.register import RegisterParams
from flows.runners import RunnerSettings, make_task_runner
from flows.session import (
    RunSession,
    closing_failed_run,
    open_session,
    raise_alarms,
    recorded_stage,
)
from flows.settings import default_out_root
from tasks.photometry import cluster_catalogue_task, stack_photometry_task
from tgpcore import __version__
from tgpcore.io.checksum import product_key, sha256_file
from tgpcore.qc import negative_flux_alarms
from tgpcore.registration.products import NOMINAL_FWHM_PX

PHOTOMETRY_PARAMS_VERSION = 2  # 2: neighbour-free sky annuli; VARSUMF error scaling


class PhotometryParams(RegisterParams):
    """Parameters of source photometry (plus those of the stages before it)."""

    detect_sigma: float = Field(4.0, description="Detection threshold (local noise sigma)")
    aperture_fwhm: float = Field(1.2, description="Aperture radius in FWHM")
    annulus_fwhm: tuple[float, float] = Field((3.0, 5.0),
                                              description="Background annulus in FWHM")
    psf: Literal["auto", "off", "all"] = Field(
        "auto", description="PSF photometry: for blended stars (auto), never, or all stars")
    blend_fwhm: float = Field(2.0, description="Neighbour closer than this (FWHM): blended")
    match_arcsec: float = Field(1.0, description="Cross-match radius between bands/pointings")

    def photometry_config(self, fwhm_guess_px: float | None = None) -> dict[str, Any]:
        """Options of :class:`tgpcore.photometry.PhotometryConfig`.

        The FWHM guess is ``fwhm_px`` when given, else ``fwhm_guess_px`` (the detection FWHM
        that registration used for the stack), else the nominal 3.5 px; photometry measures
        the FWHM from there.
        """
        guess = self.fwhm_px if self.fwhm_px is not None else (fwhm_guess_px or NOMINAL_FWHM_PX)
        return {"fwhm_guess_px": float(guess), "nsigma": self.detect_sigma,
                "r_ap_fwhm": self.aperture_fwhm, "r_in_fwhm": self.annulus_fwhm[0],
                "r_out_fwhm": self.annulus_fwhm[1], "psf": self.psf,
                "blend_fwhm": self.blend_fwhm}


@dataclass
class PhotometryOutcome:
    """Stack catalogues (stack id -> result) and cluster catalogues (cluster -> result)."""

    stacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # stack id or cluster -> reason
    skipped: dict[str, str] = field(default_factory=dict)  # stack id -> why not measured

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


def _standard_stacks(reg: Any, records: Any) -> set[str]:
    if records is None:
        return set()
    from flows.register import _rec

    out = set()
    for sid, st in reg.stacks.items():
        kinds = set()
        for raw in st.get("members", []):
            try:
                kinds.add(_rec(records, raw).get("kind"))
            except KeyError:
                continue
        if kinds == {"standard"}:
            out.add(sid)
    return out


def run_photometry_stage(session: RunSession, params: PhotometryParams, reg: Any, sol: Any,
                         records: Any = None) -> PhotometryOutcome:
    """Measure every stack of the run and build one instrumental catalogue per cluster.

    Parameters
    ----------
    session : RunSession
        The open run.
    params : PhotometryParams
    reg : RegistrationOutcome
        ``stacks[stack_id]`` with ``path`` and ``filter``.
    sol : SolveOutcome or None
        Solved stacks carry a WCS (sky positions, SkyCoord band matching); unsolved ones are
        measured too, and matched by pixel within their pointing.
    records : Inventory or mapping, optional
        With it, stacks of standard-star fields are skipped (the calibration stage measures
        their frames).

    Returns
    -------
    PhotometryOutcome
        ``stacks[sid]``: ``status``, ``path`` (ECSV), ``n_stars``, ``fwhm_px``,
        ``apcorr_mag``, ``airmass``, ``filter``; ``clusters[name]``: ``path`` (instrumental
        multi-band ECSV, columns ``<F>_inst``, ``<F>_inst_err``, ``<F>_flags``,
        ``<F>_airmass``), ``n_stars``, ``bands``, ``short_long`` offsets.
    """
    logger = get_run_logger()
    db, run_id = session.db, session.run_id
    out = PhotometryOutcome()
    cfg = params.photometry_config()
    params_rec = {**cfg, "version": PHOTOMETRY_PARAMS_VERSION}
    cat_dir = session.run_dir / "catalogs" / "stacks"
    std = _standard_stacks(reg, records)
    with recorded_stage(session, "photometry") as counters:
        futs, recs = {}, {}
        for sid, st in sorted(reg.stacks.items()):
            if sid in std:
                out.skipped[sid] = "standard-star field (calibrated from its frames)"
                continue
            dest = cat_dir / f"{sid.replace('/', '_')}.ecsv"
            cfg_s = params.photometry_config(st.get("fwhm_px"))
            recs[sid] = {**cfg_s, "version": PHOTOMETRY_PARAMS_VERSION}
            futs[sid] = stack_photometry_task.submit(st["path"], str(dest), cfg_s)
        for sid, fut in futs.items():
            rec_s = recs[sid]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - one stack never stops the others
                res = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
            res.pop("summary", None)
            out.stacks[sid] = res
            inputs = {"stack": sha256_file(reg.stacks[sid]["path"])}
            pkey = product_key("stack_catalog", inputs, rec_s, __version__)
            if res["status"] != "ok":
                out.failed[sid] = res.get("reason", "failed")
                db.record_product(run_id, "stack_catalog", pkey, None, None, inputs,
                                  rec_s, __version__, status="failed")
                continue
            pid = db.record_product(run_id, "stack_catalog", pkey, res["path"],
                                    res["checksum"], inputs, rec_s, __version__)
            db.add_qc(run_id, res["qc"], product_id=pid)
            raise_alarms(session, negative_flux_alarms(
                sid, res["qc"].get("n_negative_flux", 0.0),
                res["qc"].get("n_pixels_unmasked", 0.0), res["qc"].get("n_stars")))
        by_cluster: dict[str, dict[str, dict[str, Any]]] = {}
        for sid, res in out.stacks.items():
            if res["status"] == "ok":
                by_cluster.setdefault(sid.split("/")[0], {})[sid] = res
        cfuts = {}
        for cluster, stacks in sorted(by_cluster.items()):
            dest = session.run_dir / "catalogs" / f"{cluster}_instrumental.ecsv"
            cfuts[cluster] = cluster_catalogue_task.submit(stacks, str(dest),
                                                           params.match_arcsec)
        for cluster, fut in cfuts.items():
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001
                out.failed[cluster] = f"{type(exc).__name__}: {exc}"
                continue
            out.clusters[cluster] = res
            inputs = {"catalogs": sorted(r["checksum"] for r in by_cluster[cluster].values())}
            pkey = product_key("instrumental_catalog", inputs, params_rec, __version__)
            pid = db.record_product(run_id, "instrumental_catalog", pkey, res["path"],
                                    res["checksum"], inputs, params_rec, __version__)
            db.add_qc(run_id, {"n_stars": float(res["n_stars"])}, product_id=pid)
        n_ok = sum(r["status"] == "ok" for r in out.stacks.values())
        counters.update({"stacks": n_ok, "failed": len(out.failed),
                         "skipped": len(out.skipped), "clusters": len(out.clusters)})
        logger.info("photometry of %d/%d stacks; %d cluster catalogues%s", n_ok,
                    len(out.stacks), len(out.clusters),
                    ("; failed: " + "; ".join(f"{k}: {v}" for k, v in out.failed.items()))
                    if out.failed else "")
        rows = [{"stack": k, "stars": r.get("n_stars", 0),
                 "fwhm_px": round(r.get("fwhm_px") or 0.0, 3),
                 "apcorr_mag": round(r.get("apcorr_mag") or 0.0, 4),
                 "airmass": r.get("airmass"), "status": r["status"]}
                for k, r in out.stacks.items()]
        md = [f"# Photometry: {n_ok}/{len(out.stacks)} stacks", ""]
        md += [f"- `{r['stack']}`: {r['stars']} stars, FWHM {r['fwhm_px']} px, "
               f"aperture correction {r['apcorr_mag']} mag" for r in rows if r["status"] == "ok"]
        md += [f"- `{k}` failed: {v}" for k, v in out.failed.items()]
        md += [f"- `{k}` skipped: {v}" for k, v in out.skipped.items()]
        md += [f"- cluster `{k}`: {v['n_stars']} stars in {', '.join(v['bands'])} -> "
               f"`{v['path']}`" for k, v in out.clusters.items()]
        create_markdown_artifact("\n".join(md), key="photometry-summary")
        if rows:
            create_table_artifact(rows, key="photometry-stacks",
                                  description="Stars, FWHM and aperture correction per stack")
        if out.stacks and n_ok == 0:  # nothing measured: the stage failed, whatever was skipped
            first = next(iter(out.failed.items()))
            raise RuntimeError(f"photometry failed on all {len(out.stacks)} stacks "
                               f"(first: {first[0]}: {first[1]})")
    return out

def photometry_step(night: Any) -> PhotometryOutcome:
    """Photometry in a walk of the stage table (unsolved stacks too, when solving failed)."""
    return run_photometry_stage(night.session, night.params, night.get("register"),
                                night.get("solve"), night.get("inventory"))


@dataclass
class NightToPhotometry:
    """Every stage's outcome from the inventory to the photometry of one night."""

    inv: Any
    plan: Any
    cal: Any
    reg: Any
    sol: Any
    phot: Any


def run_stages_to_photometry(session: RunSession, params: PhotometryParams
                             ) -> NightToPhotometry:
    """Inventory, plan, calibrate, register, solve and photometry (call inside a flow)."""
    from flows.calibrate import run_calibrate_stage
    from flows.inventory import run_inventory_stage
    from flows.plan import run_plan_stage
    from flows.register import run_register_stage, run_solve_stage

    inv = run_inventory_stage(session, params)
    plan = run_plan_stage(session, params, inv)
    cal = run_calibrate_stage(session, params, inv, plan)
    reg = run_register_stage(session, params, cal, inv)
    sol = run_solve_stage(session, params, reg)
    phot = run_photometry_stage(session, params, reg, sol, inv)
    return NightToPhotometry(inv, plan, cal, reg, sol, phot)


@flow(name="tgp-photometry", log_prints=True)
def photometry_flow(params: PhotometryParams, run_id: str | None = None) -> dict[str, Any]:
    """Inventory, plan, calibrate, register and solve a night, then measure its stacks."""
    session = open_session(params.data, params.out, params.profile,
                           params.model_dump(mode="json"), run_id=run_id)
    with closing_failed_run(session):
        night = run_stages_to_photometry(session, params)
    if run_id is None:
        session.db.finish_run(session.run_id, "succeeded")
    return {"run_id": session.run_id, "run_dir": str(session.run_dir),
            "photometry": night.phot.to_dict()}


def main(argv: list[str] | None = None) -> int:
    """Command line: photometry of a night's stacks."""
    ap = argparse.ArgumentParser(prog="python -m flows.photometry", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="raw night folder")
    ap.add_argument("--out", default=default_out_root(), help="output root")
    ap.add_argument("--profile", help="instrument profile name or TOML file")
    ap.add_argument("--reference-catalog", help="local reference catalogue for plate solving")
    ap.add_argument("--psf", choices=["auto", "off", "all"], default="auto")
    ap.add_argument("--runner", choices=["dask", "threads"], default="dask")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    params = PhotometryParams(data=args.data, out=args.out, profile=args.profile,
                              reference_catalog=args.reference_catalog, psf=args.psf,
                              runner=RunnerSettings(kind=args.runner, n_workers=args.workers))
    result = photometry_flow.with_options(task_runner=make_task_runner(params.runner))(params)
    ph = result["photometry"]
    for sid, r in ph["stacks"].items():
        print(f"{sid}: " + (f"{r['n_stars']} stars, FWHM {r['fwhm_px']:.2f} px -> {r['path']}"
                            if r["status"] == "ok" else f"failed: {r.get('reason')}"))
    for c, r in ph["clusters"].items():
        print(f"{c}: {r['n_stars']} stars in {', '.join(r['bands'])} -> {r['path']}")
    return 0 if ph["clusters"] else 1


if __name__ == "__main__":
    sys.exit(main())
