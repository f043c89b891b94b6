"""Benchmark of stacking (and of solving one stack) against ``ccdproc.combine``.

Workload: 100 calibrated frames of 2048x2048 (float32 e- with UNCERT and MASK, as written by
``tgpcore.io.fits.write_ccd``): one star field rendered with Gaussian stars, sky and Poisson +
read noise, cosmic rays masked, and already on one grid (identity transforms), so both sides
do the same job. Ours: :func:`tgpcore.registration.stack_frames` (inverse-variance weighted,
sigma-clipped, row blocks, uncertainty and mask propagated). Baseline: ``ccdproc.combine``
(average, one pass of sigma clipping with median/std, ``mem_limit`` 1 GB; ours
also clips once) of the same files, in the same
run. The two stacks are checked to agree. Solving: the reference-catalogue solver on our
stack with its position hint 5' off, against the field's own catalogue.

    .venv/bin/python benchmarks/bench_stack.py [--frames 100] [--size 2048] [--keep]

The last line of the output is JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import measured  # noqa: E402

warnings.simplefilter("ignore")

SCALE = 0.5  # arcsec/px
RA0, DEC0 = 97.5, 24.5


def make_frames(out: Path, n: int, size: int, seed: int = 0) -> tuple[list[str], dict]:
    """Write ``n`` frames of one star field; return their paths and the field's catalogue."""
    from astropy import units as u
    from astropy.io import fits
    from astropy.nddata import CCDData, StdDevUncertainty
    from astropy.wcs import WCS

    from tgpcore.io.fits import write_ccd

    rng = np.random.default_rng(seed)
    n_stars = size * size // 4000
    x, y = rng.uniform(5, size - 5, n_stars), rng.uniform(5, size - 5, n_stars)
    flux = 10 ** rng.uniform(2.5, 5.0, n_stars)
    sig = 1.3
    signal = np.zeros((size, size), np.float32)
    half = 7
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    for xs, ys, f in zip(x, y, flux, strict=True):
        ix, iy = int(xs), int(ys)
        sl = (slice(max(iy - half, 0), iy + half + 1), slice(max(ix - half, 0), ix + half + 1))
        g = np.exp(-0.5 * ((xx + ix - xs) ** 2 + (yy + iy - ys) ** 2) / sig**2)
        g = (f / (2 * np.pi * sig**2) * g)[half - (iy - sl[0].start):, half - (ix - sl[1].start):]
        signal[sl] += g[:signal[sl].shape[0], :signal[sl].shape[1]]
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [RA0, DEC0]
    w.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    w.wcs.cd = np.array([[-SCALE / 3600, 0], [0, SCALE / 3600]])
    ra, dec = w.all_pix2world(x, y, 0)
    catalogue = {"ra": ra, "dec": dec, "mag": 25 - 2.5 * np.log10(flux)}
    paths = []
    t = 60.0
    for k in range(n):
        sky = 100.0 + rng.normal(0, 2.0)
        expected = signal + sky
        data = rng.poisson(expected).astype(np.float32) + rng.normal(0, 5, expected.shape)
        mask = np.zeros(expected.shape, bool)
        cr = rng.integers(0, size, (2, 300))
        data[cr[0], cr[1]] += 3000.0
        mask[cr[0], cr[1]] = True
        unc = np.sqrt(np.clip(data, 0, None) + 25.0).astype(np.float32)
        hdr = fits.Header({"EXPTIME": t, "FILTER": "V", "OBJECT": "BENCH", "RA": RA0,
                           "DEC": DEC0})
        ccd = CCDData(data, unit=u.electron, header=hdr, uncertainty=StdDevUncertainty(unc),
                      mask=mask)
        paths.append(str(write_ccd(ccd, out / f"frame_{k:03d}.fits")))
    return paths, catalogue


def run_ours(paths: list[str], out: Path) -> str:
    from tgpcore.registration import StackMember, stack_frames

    res = stack_frames([StackMember(p) for p in paths], (SIZE, SIZE), out / "ours.fits",
                       sigma=3.0, rel_tol=0.0, max_iters=1, mem_budget_mb=256)
    return res.path


def run_baseline(paths: list[str], out: Path) -> str:
    import ccdproc
    from astropy import units as u

    res = ccdproc.combine(paths, method="average", sigma_clip=True, sigma_clip_low_thresh=3,
                          sigma_clip_high_thresh=3, sigma_clip_func=np.ma.median,
                          sigma_clip_dev_func=np.ma.std, mem_limit=1e9, unit=u.electron,
                          combine_uncertainty_function=np.ma.std)
    dest = out / "baseline.fits"
    res.write(dest, overwrite=True)
    return str(dest)


def solve(path: str, catalogue: dict) -> dict:
    from astropy.table import Table

    from tgpcore.astrometry import solve_image

    hint_ra = RA0 + 5 / 60 / np.cos(np.radians(DEC0))
    return solve_image(path, SCALE, hint_ra, DEC0, reference=Table(catalogue),
                       steps=("catalogue",), write=False)


SIZE = 2048


def main(argv: list[str] | None = None) -> int:
    global SIZE
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--keep", action="store_true", help="keep the frames and stacks")
    args = ap.parse_args(argv)
    SIZE = args.size
    work = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    try:
        t0 = time.perf_counter()
        paths, catalogue = make_frames(work / "frames", args.frames, args.size)
        print(f"wrote {len(paths)} frames of {args.size}x{args.size} in "
              f"{time.perf_counter() - t0:.1f} s under {work}")
        r: dict = {}
        with measured(r, "ours"):
            ours = run_ours(paths, work)
        with measured(r, "baseline"):
            base = run_baseline(paths, work)
        import tgpcore.astrometry  # noqa: F401 - import time is not solving time
        with measured(r, "solve"):
            sol = solve(ours, catalogue)
        from tgpcore.io.fits import read_ccd
        a = read_ccd(ours).data * 60.0  # ours is e-/s; the baseline averages e-
        from astropy.io import fits
        b = fits.getdata(base).astype(np.float32)
        core = slice(16, -16)
        rel = np.nanmedian(np.abs(a[core, core] - b[core, core])) / np.nanmedian(b)
        print(f"{'':10s} {'wall s':>8s} {'peak RSS MB':>12s}")
        print(f"{'ours':10s} {r['ours_s']:8.1f} {r['ours_peak_mb']:12.0f}")
        print(f"{'ccdproc':10s} {r['baseline_s']:8.1f} {r['baseline_peak_mb']:12.0f}")
        print(f"solve: {sol['status']} by {sol['solver']}, {sol['n_matched']} stars, "
              f"RMS {sol['rms_arcsec']}\" in {r['solve_s']:.2f} s")
        print(f"stacks agree: median |ours - ccdproc| / sky = {rel:.2e}")
        out = {"bench": "stack", "frames": args.frames, "size": args.size,
               "ours_s": round(r["ours_s"], 2), "baseline_s": round(r["baseline_s"], 2),
               "speedup": round(r["baseline_s"] / r["ours_s"], 2),
               "peak_rss_mb": round(r["ours_peak_mb"]),
               "baseline_peak_rss_mb": round(r["baseline_peak_mb"]),
               "rss_ratio": round(r["baseline_peak_mb"] / r["ours_peak_mb"], 2),
               "solve_s": round(r["solve_s"], 2), "solve_ok": sol["status"] == "ok",
               "agreement": float(f"{rel:.3g}")}
        print(json.dumps(out))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
