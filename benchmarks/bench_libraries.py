"""The calibration stage with our hand-written pieces, and with the libraries made for them.

Issue 23 asks, for every piece of tgp that re-implements a maintained library, a benchmark of
the whole stage: keep ours only where the stage is measurably faster with it. This runs the
calibration stage of ``bench_calibration.py`` (the bench night, every master and frame on the
calibrate flow's 2-worker Dask cluster, as the flow schedules them) once per variant, each with
one piece swapped for the library on the workers:

- ``ours``: tgpcore as it is;
- ``np.median``: the masters' median along the stack (``combine._median0``, a selection
  network) by ``np.median(axis=0)``, and ``tgpcore.robust.median``/``mad_std`` by
  ``np.median`` and ``astropy.stats.mad_std``;
- ``scipy.ndimage``: ``morphology.grow_mask`` by ``ndimage.binary_dilation`` and
  ``morphology.label_pixels`` by ``ndimage.label`` of the whole image;
- ``ccdproc``: overscan and trim (``detector.prepare`` and the masters' ``region_level``) by
  ``ccdproc.subtract_overscan(median=True, model=Polynomial1D(0))`` and ``ccdproc.trim_image``;
- ``astroscrappy``: ``lacosmic.detect_cosmics`` by ``astroscrappy.detect_cosmics`` (same
  parameters; its OpenMP threads left at their default);
- ``libraries``: all of the above at once.

Variants run in turn, --repeat rounds (2), each after the same rest as bench_calibration's
phases; the median wall time of each is reported. The products of every variant's first round
are compared with ours: max |diff| of the masters and calibrated frames (where neither masks the
pixel, in units of the product's uncertainty and absolute) and the pixels whose mask differs.

    .venv/bin/python benchmarks/bench_libraries.py [--night DIR] [--repeat N] [--settle S]
        [--variants ours,np.median,...]

``--stage membership`` instead times the membership stage (``find_members`` on
bench_membership's 10,000-star cone, one core, best of --repeat) with the KDE centroid's kernel
sums by scikit-learn's ``KernelDensity`` (tgpcore since issue 23) and by the hand-written numpy
sums it replaced (kept here as the reference), in alternation, and compares their results.

The last line of the output is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

if "membership" in sys.argv:       # one core, as bench_membership (set before numpy loads)
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import bench_night, measured  # noqa: E402
from bench_calibration import cluster_client, ready, run_ours  # noqa: E402

warnings.simplefilter("ignore")


def use_numpy_median() -> None:
    import numpy as np
    from astropy.stats import mad_std

    from tgpcore import robust
    from tgpcore.calibration import combine, masters

    def median0(block):
        return np.median(block, axis=0)

    combine._median0 = masters._median0 = median0
    robust.median = np.median
    robust.mad_std = mad_std


def use_ndimage() -> None:
    import numpy as np
    from scipy import ndimage

    from tgpcore.calibration import apply, cosmics, lacosmic, morphology

    cross, box = ndimage.generate_binary_structure(2, 1), np.ones((3, 3), bool)

    def grow_mask(mask, connectivity=8):
        return ndimage.binary_dilation(mask, cross if connectivity == 4 else box)

    def label_pixels(idx, shape):
        img = np.zeros(shape, bool)
        img.ravel()[idx] = True
        lab, n = ndimage.label(img, structure=box)
        return lab.ravel()[idx].astype(np.int32), int(n)

    morphology.grow_mask = apply.grow_mask = lacosmic.grow_mask = grow_mask
    morphology.label_pixels = cosmics.label_pixels = label_pixels


def use_ccdproc() -> None:
    import ccdproc
    import numpy as np
    from astropy.modeling.models import Polynomial1D
    from astropy.nddata import CCDData

    from tgpcore.calibration import apply, detector, members

    def fits_section(s):
        return f"[{s[0]}:{s[1]},{s[2]}:{s[3]}]"

    def region_level(region):
        ccd = CCDData(np.asarray(region), unit="adu")
        out = ccdproc.subtract_overscan(ccd, overscan=ccd, median=True, overscan_axis=1,
                                        model=Polynomial1D(0))
        return float(ccd.data[0, 0] - out.data[0, 0])

    def prepare(raw, setup):
        saturated = raw >= setup.saturation_adu
        ccd = CCDData(raw, unit="adu", copy=False)
        level = 0.0
        if setup.overscan:
            out = ccdproc.subtract_overscan(ccd, fits_section=fits_section(setup.overscan),
                                            median=True, overscan_axis=1,
                                            model=Polynomial1D(0))
            level = float(ccd.data[0, 0] - out.data[0, 0])
            ccd = out
        if setup.trim:
            ccd = ccdproc.trim_image(ccd, fits_section=fits_section(setup.trim))
            saturated = detector.trim(saturated, setup)
        return np.asarray(ccd.data, np.float32), saturated, level

    detector.prepare = apply.prepare = prepare
    detector.region_level = members.region_level = region_level


def use_astroscrappy() -> None:
    import astroscrappy
    import numpy as np

    from tgpcore.calibration import cosmics

    def detect_cosmics(data, mask=None, readnoise=6.5, sigclip=4.5, sigfrac=0.3, objlim=5.0,
                       niter=4, var=None):
        cr, _ = astroscrappy.detect_cosmics(
            np.asarray(data, np.float32), inmask=mask, gain=1.0, readnoise=readnoise,
            satlevel=np.inf, sigclip=sigclip, sigfrac=sigfrac, objlim=objlim, niter=niter,
            sepmed=True, cleantype="meanmask", fsmode="median", invar=var, verbose=False)
        return np.asarray(cr, bool)

    cosmics.detect_cosmics = detect_cosmics


def use_libraries() -> None:
    use_numpy_median()
    use_ndimage()
    use_ccdproc()
    use_astroscrappy()


VARIANTS = {"ours": None, "np.median": use_numpy_median, "scipy.ndimage": use_ndimage,
            "ccdproc": use_ccdproc, "astroscrappy": use_astroscrappy,
            "libraries": use_libraries}


def compare(ours_dir: Path, other_dir: Path) -> dict[str, float]:
    """Masters and calibrated frames of a variant against ours."""
    from tgpcore.io.fits import read_ccd

    worst: dict[str, float] = {}
    for sub in ("masters", "calibrated"):
        abs_d = rel_d = 0.0
        mask_px = 0
        for a_path in sorted((ours_dir / sub).glob("*.fits")):
            a, b = read_ccd(a_path), read_ccd(other_dir / sub / a_path.name)
            ma = a.mask if a.mask is not None else np.zeros(a.shape, bool)
            mb = b.mask if b.mask is not None else np.zeros(b.shape, bool)
            mask_px = max(mask_px, int(np.count_nonzero(ma != mb)))
            good = ~ma & ~mb & np.isfinite(a.data) & np.isfinite(b.data)
            d = np.abs(a.data[good].astype(np.float64) - b.data[good])
            if d.size:
                abs_d = max(abs_d, float(d.max()))
                if a.uncertainty is not None:
                    u = a.uncertainty.array[good]
                    ok = u > 0
                    if ok.any():
                        rel_d = max(rel_d, float((d[ok] / u[ok]).max()))
        worst[f"{sub}_max_abs_diff"] = abs_d
        worst[f"{sub}_max_diff_in_sigma"] = rel_d
        worst[f"{sub}_max_mask_pixels_differing"] = mask_px
    return worst


def _kde2(points: np.ndarray, grid: np.ndarray, h: float) -> np.ndarray:
    """The hand-written 2-D kernel sum tgpcore.membership.kde used before issue 23."""
    d2 = ((grid[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    return np.exp(-0.5 * d2 / h**2).sum(1)


def _kde1(points: np.ndarray, grid: np.ndarray, h: float) -> np.ndarray:
    """The hand-written 1-D kernel sum tgpcore.membership.kde used before issue 23."""
    return np.exp(-0.5 * ((grid[:, None] - points[None, :]) / h) ** 2).sum(1)


def hand_written_kernel_sum(points, grid, h):
    points = np.asarray(points, float)
    if points.ndim == 1:
        return _kde1(points, np.asarray(grid, float), h)
    return _kde2(points, np.asarray(grid, float), h)


def bench_membership(repeat: int) -> int:
    import time

    from bench_membership import DEC0, RA0, R, make_cone

    from tgpcore.membership import find_members, kde

    gaia, _ = make_cone()
    library = kde._kernel_sum
    times: dict[str, list[float]] = {"hand-written": [], "scikit-learn": []}
    results = {}
    for _ in range(repeat):
        for name, fn in (("hand-written", hand_written_kernel_sum), ("scikit-learn", library)):
            kde._kernel_sum = fn
            t0 = time.perf_counter()
            res = find_members(gaia, centre=(RA0, DEC0), radius_deg=R / 60.0)
            times[name].append(time.perf_counter() - t0)
            results[name] = res
    kde._kernel_sum = library
    a, b = (results[k] for k in ("hand-written", "scikit-learn"))
    ca, cb = a.summary()["centroid"], b.summary()["centroid"]
    dc = max(abs(ca[k] - cb[k]) for k in ("pmra_masyr", "pmdec_masyr", "parallax_mas"))
    pa = np.nan_to_num(np.asarray(a.members["p_member"], float))
    pb = np.nan_to_num(np.asarray(b.members["p_member"], float))
    best = {k: min(v) for k, v in times.items()}
    print(f"membership stage (find_members, {len(gaia)} stars), best of {repeat}:")
    for k, v in best.items():
        print(f"  KDE kernel sums by {k:<14} {v:7.2f} s")
    print(f"  centroids differ by {dc:.3g} (mas/yr, mas); p_member by {np.max(np.abs(pa - pb)):.3g}")
    print(json.dumps({"bench": "libraries", "stage": "membership", "n_stars": len(gaia),
                      "repeat": repeat, "stage_s": {k: round(v, 3) for k, v in best.items()},
                      "stage_s_runs": {k: [round(t, 3) for t in v] for k, v in times.items()},
                      "library_vs_hand_written": round(best["scikit-learn"]
                                                       / best["hand-written"], 3),
                      "centroid_max_abs_diff": dc,
                      "p_member_max_abs_diff": float(np.max(np.abs(pa - pb)))}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", choices=("calibration", "membership"), default="calibration")
    ap.add_argument("--night", default=str(Path(tempfile.gettempdir()) / "tgp-bench-night"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--settle", type=float, default=8.0)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    if args.stage == "membership":
        return bench_membership(max(args.repeat, 3))
    names = [v for v in args.variants.split(",") if v]
    if "ours" not in names:
        names.insert(0, "ours")
    night, inv, plan = bench_night(args.night)
    import astroscrappy  # noqa: F401
    import ccdproc  # noqa: F401
    import distributed  # noqa: F401

    import flows.runners  # noqa: F401
    import tgpcore.calibration.products  # noqa: F401

    raw = sorted({p for m in plan.masters.values() for p in m.members}
                 | {e.path for e in plan.entries if e.status == "ok"})
    work = Path(tempfile.mkdtemp(prefix="tgp-bench-libs-"))
    times: dict[str, list[float]] = {n: [] for n in names}
    diffs: dict[str, dict[str, float]] = {}

    def fresh(name: str) -> Path:
        shutil.rmtree(work / name, ignore_errors=True)
        (work / name / "masters").mkdir(parents=True)
        (work / name / "calibrated").mkdir(parents=True)
        return work / name

    try:
        for k in range(args.repeat):
            for name in names:
                out = fresh(name)
                with cluster_client(2) as client:
                    if VARIANTS[name] is not None:
                        client.run(VARIANTS[name])
                    ready(raw, args.settle)
                    res: dict[str, float] = {}
                    with measured(res, name):
                        run_ours(inv, plan, out, client)
                times[name].append(res[f"{name}_s"])
                print(f"round {k + 1} {name:<14} {res[f'{name}_s']:7.1f} s", flush=True)
                if k == 0 and name != "ours":
                    diffs[name] = compare(work / "ours", out)
                if not (k == 0 and name == "ours"):
                    shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {n: float(np.median(t)) for n, t in times.items()}
    print(f"\n{'variant':<16}{'stage s':>9}{'vs ours':>9}  products vs ours")
    for n in names:
        d = diffs.get(n)
        txt = ("" if d is None else
               f"masters max|d| {d['masters_max_abs_diff']:.3g} "
               f"({d['masters_max_diff_in_sigma']:.3g} sigma), frames max|d| "
               f"{d['calibrated_max_abs_diff']:.3g} e- "
               f"({d['calibrated_max_diff_in_sigma']:.3g} sigma), mask px differing "
               f"{d['calibrated_max_mask_pixels_differing']}")
        print(f"{n:<16}{med[n]:>9.1f}{med[n] / med['ours']:>9.2f}  {txt}")
    print(json.dumps({"bench": "libraries", "stage": "calibration", "night": str(night),
                      "repeat": args.repeat,
                      "stage_s": {n: round(v, 2) for n, v in med.items()},
                      "stage_s_runs": {n: [round(t, 2) for t in v] for n, v in times.items()},
                      "ratio_vs_ours": {n: round(med[n] / med["ours"], 3) for n in names},
                      "products_vs_ours": diffs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
