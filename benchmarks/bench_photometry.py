"""Benchmark of detection + aperture photometry on a 2048x2048 stack with ~5000 stars.

Workload: a rate image (e-/s) of ~5000 Moffat stars (FWHM 3.5 px, beta 3) rendered with the
simulator's renderer, sky, Poisson and read noise, and its uncertainty image. Ours:
:func:`tgpcore.photometry.measure_image` (Background2D, DAOStarFinder, windowed centroids,
FWHM, vectorised apertures with annulus backgrounds, curve of growth; PSF path off), timed
whole, and its aperture step (:func:`tgpcore.photometry.aperture_photometry_table`) alone.
Baseline: a per-star Python loop over the same apertures and annuli with photutils
(``aperture_photometry`` on one aperture, ``ApertureStats`` sigma-clipped median of one
annulus), in the same run. The two are checked to agree.

    .venv/bin/python benchmarks/bench_photometry.py [--size 2048] [--stars 5000]

The last line of the output is JSON: ``speedup`` = loop / ours (aperture step), ``ours_s`` =
detection + aperture photometry (the whole measure_image).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import measured  # noqa: E402

warnings.simplefilter("ignore")


def make_stack(size: int, n: int, seed: int = 0):
    """Rate image, uncertainty and truth of a field of ``n`` stars."""
    from tgpcore.simulate.psf import render_moffat, stamp_half_sizes

    rng = np.random.default_rng(seed)
    fwhm, beta, t = 3.5, 3.0, 600.0
    x = rng.uniform(10, size - 10, n)
    y = rng.uniform(10, size - 10, n)
    mag = 13.0 + 8.0 * np.sqrt(rng.uniform(0, 1, n))
    flux_e = 10 ** (-0.4 * (mag - 25.0)) * t
    half = stamp_half_sizes(flux_e, fwhm, beta, max_half=64)
    img, _ = render_moffat((size, size), x, y, flux_e, half, fwhm, beta)
    sky = 300.0
    model = img + sky
    data = rng.poisson(model).astype(np.float32) + rng.normal(0, 5.0, model.shape)
    err = np.sqrt(model + 25.0)
    return (data / t).astype(np.float32), (err / t).astype(np.float32), x, y


def loop_photometry(data, error, x, y, r_ap, r_in, r_out):
    """The baseline: one star at a time with photutils."""
    from astropy.stats import SigmaClip
    from photutils.aperture import (
        ApertureStats,
        CircularAnnulus,
        CircularAperture,
        aperture_photometry,
    )

    clip = SigmaClip(sigma=3.0, maxiters=3)
    flux = np.empty(len(x))
    for i in range(len(x)):
        ap = CircularAperture((x[i], y[i]), r=r_ap)
        an = CircularAnnulus((x[i], y[i]), r_in=r_in, r_out=r_out)
        s = aperture_photometry(data, ap, error=error, method="exact")
        bkg = ApertureStats(data, an, sigma_clip=clip).median
        flux[i] = float(s["aperture_sum"][0]) - bkg * ap.area
    return flux


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--stars", type=int, default=5000)
    args = ap.parse_args(argv)
    from tgpcore.photometry import PhotometryConfig, aperture_photometry_table, measure_image

    t0 = time.perf_counter()
    data, err, _, _ = make_stack(args.size, args.stars)
    print(f"workload: {args.size}x{args.size}, {args.stars} stars rendered "
          f"({time.perf_counter() - t0:.1f} s)")
    res: dict = {}
    with measured(res, "ours"):
        tab, summary = measure_image(data, err, None, PhotometryConfig(psf="off"))
    x, y = np.asarray(tab["x"]), np.asarray(tab["y"])
    r_ap, r_in, r_out = summary["r_ap_px"], summary["r_in_px"], summary["r_out_px"]
    with measured(res, "ours_aperture"):
        ours = aperture_photometry_table(data, err, None, x, y, r_ap, r_in, r_out)
    with measured(res, "loop"):
        base = loop_photometry(data, err, x, y, r_ap, r_in, r_out)
    f = np.asarray(ours["flux"])
    good = np.isfinite(f) & np.isfinite(base) & (f > 0) & (np.asarray(ours["flags"]) == 0)
    rel = np.abs(f[good] - base[good]) / np.asarray(ours["flux_err"])[good]
    agree = float(np.median(rel))
    speedup = res["loop_s"] / res["ours_aperture_s"]
    rows = [("stars detected", f"{len(tab)}"),
            ("FWHM (px)", f"{summary['fwhm_px']:.2f}"),
            ("ours: detection + photometry (s)", f"{res['ours_s']:.2f}"),
            ("ours: aperture step (s)", f"{res['ours_aperture_s']:.2f}"),
            ("baseline: per-star loop (s)", f"{res['loop_s']:.2f}"),
            ("speedup (loop / ours, aperture step)", f"{speedup:.1f}"),
            ("agreement: median |ours - loop| / error", f"{agree:.3f}"),
            ("peak RSS (MB)", f"{res['ours_peak_mb']:.0f}")]
    w = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{w}}  {b}")
    ok = agree < 0.3 and res["ours_s"] <= 10.0 and speedup >= 10.0
    print("targets (<= 10 s, >= 10x, agreement): " + ("met" if ok else "NOT met"))
    print(json.dumps({"bench": "photometry", "ours_s": round(res["ours_s"], 3),
                      "ours_aperture_s": round(res["ours_aperture_s"], 3),
                      "baseline_s": round(res["loop_s"], 3), "speedup": round(speedup, 2),
                      "n_stars": len(tab), "agreement_sigma": round(agree, 4),
                      "peak_rss_mb": round(res["ours_peak_mb"], 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
