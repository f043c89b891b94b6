"""Cosmic-ray masks against the simulator's truth on the tiny night, for parameter variants.

    .venv/bin/python benchmarks/measure_cosmics.py [--seed N] [--variants JSON] [--workdir DIR]

``--variants`` maps a name to ``detect_cosmic_rays`` keyword arguments, e.g.
``'{"default": {}, "one pass": {"niter": 1}}'``. Prints, per variant, the fraction of injected
cosmic-ray pixels above 5 sigma that are masked and the fraction of star-core pixels (within
1.5 px of unsaturated stars) wrongly masked, that fraction for stars whose peak is at least
5 sigma (a star fainter than the noise has no core to tell from the sky), and the fraction of
sky pixels (4 px from any star or cosmic ray) masked; for a single variant, also the stars
concerned.
The frames are calibrated once without cosmic-ray detection and kept in the work folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_ROOT), str(_ROOT / "tests")]

from tgpcore.calibration.cosmics import detect_cosmic_rays  # noqa: E402
from tgpcore.io.fits import read_ccd, read_flags  # noqa: E402
from tgpcore.simulate import simulate_night  # noqa: E402
from tgpcore.simulate.truth import load_truth  # noqa: E402

from _calibrated import build_masters, calibrate_entries  # noqa: E402


def measure(truth, calibrated: Path, kw: dict) -> tuple[int, int, int, int, list, dict]:
    """(hit, strong, core_wrong, core_total, stars with wrongly masked core pixels, extra):
    ``extra`` holds the same count for the cores of stars whose peak is at least 5 sigma
    (``visible_wrong``, ``visible_total``) and the rate of masks on sky pixels more than
    4 px from any star or cosmic ray (``sky_wrong``, ``sky_total``)."""
    from scipy import ndimage

    sources = truth.sources()
    yy, xx = np.mgrid[-2:3, -2:3]
    inner = (xx ** 2 + yy ** 2) <= 1.5 ** 2
    hit = strong = core_total = core_wrong = 0
    extra = {"visible_wrong": 0, "visible_total": 0, "sky_wrong": 0, "sky_total": 0}
    rows = []
    for prod in sorted(calibrated.glob("*.fits")):
        name = prod.name
        ccd, flags = read_ccd(prod), read_flags(prod)
        sigma = ccd.uncertainty.array
        cr = detect_cosmic_rays(ccd.data, flags > 0, float(ccd.header["RDNOISE"]),
                                sigma_e=sigma, **kw)
        masked = cr | (flags > 0)
        crmask, crpix = truth.cosmic_rays(name)
        flat = truth.flat(str(truth.frame(name)["filter"]))
        x, y = np.asarray(crpix["x"]), np.asarray(crpix["y"])
        above = crpix["charge_e"] / flat[y, x] > 5 * sigma[y, x]
        strong += int(above.sum())
        hit += int(masked[y[above], x[above]].sum())
        ny, nx = ccd.data.shape
        near = crmask > 0
        for s in sources[sources["filename"] == name]:
            sx, sy = int(round(s["x"])), int(round(s["y"]))
            if 0 <= sx < nx and 0 <= sy < ny:
                near[sy, sx] = True
        sky = ~ndimage.binary_dilation(near, iterations=4) & (flags == 0)
        extra["sky_total"] += int(sky.sum())
        extra["sky_wrong"] += int((cr & sky).sum())
        for s in sources[(sources["filename"] == name) & ~sources["saturated"]]:
            sx, sy = int(round(s["x"])), int(round(s["y"]))
            py, px = sy + yy[inner], sx + xx[inner]
            ok = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
            py, px = py[ok], px[ok]
            core_total += len(px)
            wrong = int((cr[py, px] & (crmask[py, px] == 0)).sum())
            core_wrong += wrong
            peak = float(s["peak_e"]) if "peak_e" in s.colnames else float("nan")
            if peak >= 5 * float(np.median(sigma[py, px])):
                extra["visible_total"] += len(px)
                extra["visible_wrong"] += wrong
            if wrong:
                rows.append((name, sx, sy, peak, float(np.median(sigma[py, px])), wrong))
    return hit, strong, core_wrong, core_total, rows, extra


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--variants", default='{"default": {}}')
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "tgp-measure-cosmics"))
    args = ap.parse_args()
    root = Path(args.workdir)
    night = root / f"night{args.seed}"
    if not (night / "truth" / "truth.json").exists():
        simulate_night(night, preset="tiny", seed=args.seed)
    truth = load_truth(night)
    out = root / f"out{args.seed}"
    if not (out / "done").exists():
        inv, plan, masters = build_masters(truth.raw_dir, out)
        calibrate_entries(inv, plan, masters, out, cosmic_rays=False)
        (out / "done").write_text("calibrated without cosmic-ray detection\n")
    variants = json.loads(args.variants)
    for name, kw in variants.items():
        hit, strong, wrong, total, rows, ex = measure(truth, out / "calibrated", kw)
        print(f"{name}: CR pixels masked {hit / strong:.4f} ({hit}/{strong}); star-core pixels "
              f"wrongly masked {wrong / total:.5f} ({wrong}/{total}); of stars with a peak "
              f">= 5 sigma {ex['visible_wrong'] / max(ex['visible_total'], 1):.5f} "
              f"({ex['visible_wrong']}/{ex['visible_total']}); sky pixels masked "
              f"{ex['sky_wrong'] / max(ex['sky_total'], 1):.5f} "
              f"({ex['sky_wrong']}/{ex['sky_total']})", flush=True)
        if len(variants) == 1:
            for f, sx, sy, peak, sig, n in rows:
                print(f"    {f} x={sx} y={sy} peak {peak:.0f} e- sigma {sig:.1f} e- "
                      f"peak/sigma {peak / sig:.1f}: {n} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
