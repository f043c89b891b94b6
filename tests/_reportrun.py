"""A small finished run, written without the pipeline, for the report tests.

It has what a report must show: stage events that succeeded, failed and were not built,
accepted and rejected frames with per-frame QC, masters, stacks and a mosaic (FITS) with
product QC, a membership folder and an isochrone-fit folder with figures.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from tgpcore.plots.style import new_figure, save_figure
from tgpcore.rundb import RunDB

STAGES = [("inventory", "classify"), ("calibrate", "calibrate"), ("register", "stack"),
          ("mosaic", "mosaic"), ("photometry", "photometry"), ("photcal", "zero points"),
          ("membership", "members"), ("isochrone_fit", "fit"), ("report", "report")]
FIT = {"log_age": {"p16": 9.52, "p50": 9.6, "p84": 9.71, "best": 9.61, "unit": "dex",
                   "fixed": False},
       "dm": {"p16": 9.61, "p50": 9.66, "p84": 9.70, "best": 9.65, "unit": "mag",
              "fixed": False},
       "ebv": {"p16": 0.031, "p50": 0.042, "p84": 0.055, "best": 0.04, "unit": "mag",
               "fixed": False},
       "mh": {"p16": 0.0, "p50": 0.0, "p84": 0.0, "best": 0.0, "unit": "dex", "fixed": True},
       "derived": {"age_myr": {"p16": 3311.0, "p50": 3981.1, "p84": 5128.6}},
       "method": "emcee posterior over a PARSEC grid (test)",
       "data": {"n_stars": 412, "observables": ["G", "BP", "RP"]}}
MEMBERSHIP = {"status": "ok", "message": "found 312 members",
              "centroid": {"pmra_masyr": -10.97, "pmra_err_masyr": 0.021,
                           "pmdec_masyr": -2.94, "pmdec_err_masyr": 0.019,
                           "parallax_mas": 1.135, "parallax_err_mas": 0.004,
                           "method": "Gaussian mixture (test)"},
              "king": {"rc_arcmin": 4.1, "rc_err_arcmin": 0.3, "rt_arcmin": 31.0,
                       "rt_err_arcmin": 4.0, "method": "King 1962 (test)"},
              "counts": {"n_input": 2000, "n_members_p50": 312}}


@dataclass
class FakeRun:
    """Where the fake run is and what it contains."""

    run_id: str
    run_dir: Path
    db: RunDB
    images: int  # FITS images that get a thumbnail
    pngs: int    # PNG figures in the run folder


def _fits(path: Path, shape: tuple[int, int], seed: int, nan_border: bool = False) -> None:
    rng = np.random.default_rng(seed)
    data = rng.normal(100.0, 5.0, shape).astype(np.float32)
    data[shape[0] // 2, shape[1] // 3] = 5000.0
    if nan_border:
        data[:, :4] = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(data),
                  fits.ImageHDU(np.ones(shape, np.float32), name="UNCERT")]).writeto(path)


def _figure(path: Path, title: str) -> None:
    fig, ax = new_figure(size=(3, 2))
    ax.plot([0, 1, 2], [2, 0, 1])
    ax.set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)


def png_bytes() -> bytes:
    """A small valid PNG."""
    fig, ax = new_figure(size=(1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def make_fake_run(db: RunDB, out_root: Path, run_id: str = "20260101T000000-abcdef",
                  params: dict | None = None) -> FakeRun:
    """Write the fake run's folder and database rows; return where they are."""
    run_dir = out_root / run_id
    db.start_run("/data/night", run_dir, "tgpsim", params or {"gaia_file": "g.ecsv"}, "0.1.0",
                 run_id=run_id)
    ids = db.upsert_frames(run_id, [
        {"path": "/data/night/sci_001.fits", "kind": "science", "filter": "V",
         "exptime_s": 60.0, "status": "accepted"},
        {"path": "/data/night/sci_002.fits", "kind": "science", "filter": "B",
         "exptime_s": 60.0, "status": "accepted"},
        {"path": "/data/night/sci_003.fits", "kind": "science", "filter": "B",
         "status": "rejected", "reason": "alignment: too few stars matched (2 < 5)"},
        {"path": "/data/night/odd.fits", "kind": "unknown", "status": "rejected",
         "reason": "IMAGETYP 'focus' is not a known frame type"},
    ])
    db.add_qc(run_id, {"sky_e": 812.5, "noise_e": 28.7}, frame_id=ids["/data/night/sci_001.fits"])
    db.add_qc(run_id, {"sky_e": 640.25, "noise_e": 25.3}, frame_id=ids["/data/night/sci_002.fits"])
    for stage, status, message in [("inventory", "succeeded", None),
                                   ("calibrate", "succeeded", None),
                                   ("register", "succeeded", None),
                                   ("mosaic", "failed", "ValueError: no overlap between p0 and p1")]:
        ev = db.stage_started(run_id, stage)
        db.stage_finished(ev, status, {"n": 1}, message=message)
    db.stage_not_built(run_id, "photometry", "stage 'photometry' is not built yet: no products")
    ev = db.stage_started(run_id, "photcal")
    db.stage_finished(ev, "succeeded", {"solutions": 1})
    sol = {"filter": "V", "colour": "B-V", "zp": 22.314, "k": 0.153, "c": -0.021,
           "zp_err": 0.012, "k_err": 0.008, "c_err": 0.006, "rms": 0.021, "chi2_red": 1.1,
           "n_used": 17, "n_rejected": 1, "method": "standard stars (test)"}
    db.record_product(run_id, "photcal_solution", "k-photcal-V", None, None, {}, sol, "0.1.0")
    _figure(run_dir / "plots" / "photcal_20260101.png", "residuals")

    master = run_dir / "masters" / "bias.fits"
    _fits(master, (40, 50), 1)
    pid = db.record_product(run_id, "master_bias", "k-bias", master, None, {}, {}, "0.1.0")
    db.add_qc(run_id, {"level_adu": 401.5}, product_id=pid)
    for i, filt in enumerate("BV"):
        stack = run_dir / "stacks" / f"NGC1_p0_{filt}.fits"
        _fits(stack, (120, 90), 10 + i)
        pid = db.record_product(run_id, "stack", f"k-stack-{filt}", stack, None, {}, {}, "0.1.0")
        db.add_qc(run_id, {"n_frames": 3.0, "clipped_fraction": 0.0123}, product_id=pid)
    # a stack reused from an earlier run lives in that run's folder
    earlier = out_root / "20251231T000000-000000" / "stacks" / "NGC1_p1_V.fits"
    _fits(earlier, (64, 64), 20)
    db.record_product(run_id, "stack", "k-stack-reused", earlier, None, {}, {}, "0.1.0")
    _fits(run_dir / "mosaics" / "NGC1_V.fits", (700, 500), 30, nan_border=True)

    mem = run_dir / "membership" / "NGC1"
    mem.mkdir(parents=True)
    (mem / "membership.json").write_text(json.dumps(MEMBERSHIP))
    _figure(mem / "members_pm.png", "proper motions")
    _figure(mem / "members_radial.png", "radial profile")
    fit = run_dir / "fit" / "NGC1"
    fit.mkdir(parents=True)
    (fit / "fit.json").write_text(json.dumps(FIT))
    _figure(fit / "cmd.png", "CMD with isochrone")
    _figure(fit / "colour_colour.png", "colour-colour")
    _figure(run_dir / "plots" / "extra.png", "an extra figure")
    return FakeRun(run_id=run_id, run_dir=run_dir, db=db, images=4, pngs=6)
