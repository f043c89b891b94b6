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

import sys
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from flows.calibrate import CalibrateOptions
from flows.inventory import InventoryParams
from flows.plan import PlanOptions
from flows.register import RegisterOptions
from flows.runner import Item, Mapped, StageRunner, stage_run
from flows.session import (
    RunSession,
    raise_alarms,
)
from flows.stagecli import run_stage_cli
from flows.walk import run_stages
from tasks.photometry import cluster_catalogue_task, stack_photometry_task
from tgpcore.inventory import record_dict
from tgpcore.io.checksum import sha256_file
from tgpcore.photometry.plan import standard_stacks
from tgpcore.qc import negative_flux_alarms
from tgpcore.registration.products import NOMINAL_FWHM_PX

PHOTOMETRY_PARAMS_VERSION = 2  # 2: neighbour-free sky annuli; VARSUMF error scaling


class PhotometryOptions(BaseModel):
    """The photometry stage's own options."""

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
        fwhm_px = getattr(self, "fwhm_px", None)  # registration's option, when composed
        guess = fwhm_px if fwhm_px is not None else (fwhm_guess_px or NOMINAL_FWHM_PX)
        return {"fwhm_guess_px": float(guess), "nsigma": self.detect_sigma,
                "r_ap_fwhm": self.aperture_fwhm, "r_in_fwhm": self.annulus_fwhm[0],
                "r_out_fwhm": self.annulus_fwhm[1], "psf": self.psf,
                "blend_fwhm": self.blend_fwhm}


class PhotometryParams(InventoryParams, PlanOptions, CalibrateOptions, RegisterOptions,
                       PhotometryOptions):
    """Parameters of the photometry flow: the options of the stages it runs."""



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
    out = PhotometryOutcome()
    kinds = {} if records is None else {raw: record_dict(records, raw).get("kind")
                                        for st in reg.stacks.values()
                                        for raw in st.get("members", []) if _has(records, raw)}
    std = standard_stacks(reg.stacks, kinds)
    out.skipped = {sid: "standard-star field (calibrated from its frames)" for sid in std}
    solved = (sol.solutions if sol is not None else {}) or {}
    with stage_run(session, "photometry", "stacks") as counts:
        runner = StageRunner(session, counts)
        items = [_stack_item(session, params, sid, solved.get(sid) or st)
                 for sid, st in sorted(reg.stacks.items()) if sid not in std]
        for sid, d in runner.run(items).items():
            out.stacks[sid] = d.result if d.ok else {"status": "failed", "reason": d.reason}
            if not d.ok:
                out.failed[sid] = d.reason
                continue
            q = d.result["qc"]
            raise_alarms(session, negative_flux_alarms(
                sid, q.get("n_negative_flux", 0.0), q.get("n_pixels_unmasked", 0.0),
                q.get("n_stars")))
        _cluster_catalogues(session, params, out, runner)
        counts.extra.update({"skipped": len(out.skipped), "clusters": len(out.clusters),
                             "stars": sum(int(r.get("n_stars") or 0)
                                          for r in out.stacks.values())})
        _photometry_report(out)
    return out


def _has(records: Any, raw: str) -> bool:
    try:
        record_dict(records, raw)
    except KeyError:
        return False
    return True


def _stack_item(session: RunSession, params: PhotometryParams, sid: str,
                st: dict[str, Any]) -> Item:
    """The runner's item of one stack's catalogue (the solved stack when there is one)."""
    cfg = params.photometry_config(st.get("fwhm_px"))
    dest = session.run_dir / "catalogs" / "stacks" / f"{sid.replace('/', '_')}.ecsv"
    parents = (st["product_id"],) if st.get("product_id") else ()
    return Item(sid, "stack_catalog", {"stack": sha256_file(st["path"])},
                {**cfg, "version": PHOTOMETRY_PARAMS_VERSION},
                submit=lambda: Mapped(stack_photometry_task.submit(st["path"], str(dest), cfg),
                                      _without_summary),
                parents=parents)


def _without_summary(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k != "summary"}


def _cluster_catalogues(session: RunSession, params: PhotometryParams, out: PhotometryOutcome,
                        runner: StageRunner) -> None:
    """One instrumental multi-band catalogue per cluster, from its measured stacks."""
    by_cluster: dict[str, dict[str, dict[str, Any]]] = {}
    for sid, res in out.stacks.items():
        if res.get("status", "ok") == "ok":
            by_cluster.setdefault(sid.split("/")[0], {})[sid] = res
    params_rec = {**params.photometry_config(), "version": PHOTOMETRY_PARAMS_VERSION}
    items = [Item(cluster, "instrumental_catalog",
                  {"catalogs": sorted(r["checksum"] for r in stacks.values())}, params_rec,
                  submit=partial(cluster_catalogue_task.submit, stacks, str(
                      session.run_dir / "catalogs" / f"{cluster}_instrumental.ecsv"),
                      params.match_arcsec),
                  parents=tuple(r["product_id"] for r in stacks.values()
                                if r.get("product_id")))
             for cluster, stacks in sorted(by_cluster.items())]
    counts = runner.counts
    saved = (counts.total, counts.done, counts.reused, counts.failed)
    for cluster, d in runner.run(items).items():
        if d.ok:
            out.clusters[cluster] = {**d.result, "qc": {"n_stars": float(d.result["n_stars"])}}
        else:
            out.failed[cluster] = d.reason
    # the stage counts stacks; a lost cluster catalogue is one failure more
    counts.total, counts.done, counts.reused = saved[:3]
    counts.failed = saved[3] + sum(c in out.failed for c in by_cluster)


def _photometry_report(out: PhotometryOutcome) -> None:
    """Log line and the Prefect artifacts of the photometry stage."""
    n_ok = sum(r.get("status", "ok") == "ok" for r in out.stacks.values())
    get_run_logger().info("photometry of %d/%d stacks; %d cluster catalogues%s", n_ok,
                          len(out.stacks), len(out.clusters),
                          ("; failed: " + "; ".join(f"{k}: {v}" for k, v in out.failed.items()))
                          if out.failed else "")
    rows = [{"stack": k, "stars": r.get("n_stars", 0),
             "fwhm_px": round(r.get("fwhm_px") or 0.0, 3),
             "apcorr_mag": round(r.get("apcorr_mag") or 0.0, 4),
             "airmass": r.get("airmass"), "status": r.get("status", "ok")}
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


def photometry_step(night: Any) -> PhotometryOutcome:
    """Photometry in a walk of the stage table (unsolved stacks too, when solving failed)."""
    return run_photometry_stage(night.session, night.params, night.get("register"),
                                night.get("solve"), night.get("inventory"))


@flow(name="tgp-photometry", log_prints=True)
def photometry_flow(params: PhotometryParams, run_id: str | None = None) -> dict[str, Any]:
    """Inventory, plan, calibrate, register and solve a night, then measure its stacks."""
    return run_stages(params, ["solve", "photometry"], run_id).result


def main(argv: list[str] | None = None) -> int:
    """Command line: photometry of a night's stacks."""
    result = run_stage_cli(argv, module="photometry", doc=__doc__, params_cls=PhotometryParams,
                           flow_fn=photometry_flow, runner="dask",
                           options=("reference_catalog", "psf"))
    ph = result["photometry"]
    for sid, r in ph["stacks"].items():
        print(f"{sid}: " + (f"{r['n_stars']} stars, FWHM {r['fwhm_px']:.2f} px -> {r['path']}"
                            if r["status"] == "ok" else f"failed: {r.get('reason')}"))
    for c, r in ph["clusters"].items():
        print(f"{c}: {r['n_stars']} stars in {', '.join(r['bands'])} -> {r['path']}")
    return 0 if ph["clusters"] else 1


if __name__ == "__main__":
    sys.exit(main())
