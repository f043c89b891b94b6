"""Benchmark of the image stages (register, mosaic, photometry) against their I/O floor and
against the code on ``main``, in one run.

Workload: a simulated night (``--preset demo``: 1024^2 frames; ``bench``: 2048^2), simulated
and calibrated once into ``--night`` (reused when present). Each code tree runs the stages
the way the flows do, without Prefect, in its own subprocess (``PYTHONPATH`` = that tree):

- register: per pointing, :func:`prepare_reference` and :func:`align_to_reference` of every
  frame, then :func:`make_stack` per (pointing, filter, exposure class);
- (solve: each stack with the reference-catalogue solver against the night's Gaia file;
  untimed, the same code on both sides, needed by the mosaics);
- mosaic: :func:`make_mosaic` per (target, filter, exposure class);
- photometry: :func:`measure_stack` of every stack of the cluster.

The I/O floor of a stage is reading its inputs and writing its outputs in the same formats
(``read_ccd`` of every input, ``write_ccd`` of every product with its extra extensions, the
ECSV tables) in the same subprocess, right before the stage; ``compute`` is the stage less
that floor. Ours against main's is the ratio of the stage times; the products are checked
to agree (stacks and mosaics pixel by pixel, catalogues star by star).

The baseline tree defaults to ``git archive main`` of this repository into a temporary
folder (``--baseline-tree DIR`` for any other checkout).

    .venv/bin/python benchmarks/bench_image_stages.py [--preset demo] [--night DIR]
        [--baseline-tree DIR] [--keep]

The last line of the output is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
STAGES = ("register", "mosaic", "photometry")


# --------------------------------------------------------------------------- preparation
def prepare_night(night: Path, preset: str, seed: int = 1) -> None:
    """Simulate and calibrate a night into ``night`` (``night/night``, ``night/calibrated``)."""
    if (night / "done").exists():
        return
    from tgpcore.calibration.plan import build_plan
    from tgpcore.calibration.products import make_calibrated, make_master
    from tgpcore.inventory import scan_night
    from tgpcore.simulate import simulate_night

    nt = simulate_night(night / "night", preset=preset, seed=seed)
    inv = scan_night(nt.raw_dir)
    plan = build_plan(inv)
    recs = {r.path: r for r in inv.records}

    def frame_input(rec):
        return {"path": rec.path, "hdu_index": rec.hdu_index or 0,
                "exptime_s": float(rec.exptime_s or 0.0), "summary": rec.header}

    masters: dict[str, str] = {}
    for kind in ("bias", "dark", "flat"):
        for key, spec in plan.masters.items():
            if spec.kind == kind:
                res = make_master(kind, key, [frame_input(recs[p]) for p in spec.members],
                                  str(night / "masters" / f"{key}.fits"),
                                  bias_path=masters.get(spec.depends.get("bias")),
                                  dark_path=masters.get(spec.depends.get("dark")))
                masters[key] = res["path"]
    fr = nt.frames()
    sci = set(fr[fr["kind"] == "science"]["filename"])
    for e in plan.entries:
        if e.status == "ok" and Path(e.path).name in sci:
            make_calibrated(frame_input(recs[e.path]), str(night / "calibrated" / Path(e.path).name),
                            masters.get(e.bias_key), masters.get(e.dark_key),
                            masters.get(e.flat_key))
    (night / "done").write_text("ok")


def night_groups(night: Path) -> dict:
    """Pointings -> calibrated frames, with filter, exposure time and position hint."""
    from astropy.table import Table

    fr = Table.read(night / "night" / "truth" / "frames.ecsv")
    fr = fr[fr["kind"] == "science"]
    pointings: dict[str, dict] = {}
    for r in fr:
        path = night / "calibrated" / r["filename"]
        if not path.exists():
            continue
        key = f"{r['target']}/p{int(r['pointing_index'])}"
        p = pointings.setdefault(key, {"target": str(r["target"]), "frames": [],
                                       "ra": float(r["ra_header_deg"]),
                                       "dec": float(r["dec_header_deg"])})
        p["frames"].append({"path": str(path), "filter": str(r["filter"]),
                            "exptime_s": float(r["exptime_s"])})
    return pointings


# --------------------------------------------------------------------------- the worker
def _floor_read(paths: list[str]) -> None:
    from tgpcore.io.fits import read_ccd, read_flags

    for p in paths:
        read_ccd(p)
        read_flags(p)


def _floor_write_images(products: list[str], work: Path, extra: tuple[str, ...]) -> None:
    """Write products of the same shape, dtype and extensions as ``products``."""
    from astropy.io import fits

    from tgpcore.io.atomic import atomic_path
    from tgpcore.io.fits import read_ccd, read_flags, write_ccd

    work.mkdir(parents=True, exist_ok=True)
    items = []
    for p in products:
        ccd = read_ccd(p)
        fl = read_flags(p)
        with fits.open(p, memmap=False) as hdul:
            ext = [(hdul[e].data.copy(), hdul[e].header.copy()) for e in extra if e in hdul]
        items.append((ccd, fl, ext))
    t0 = time.perf_counter()
    for k, (ccd, fl, ext) in enumerate(items):
        with atomic_path(work / f"floor_{k}.fits") as tmp:
            write_ccd(ccd, tmp, flags=fl)
            for data, hdr in ext:
                fits.append(tmp, data, hdr)
    return time.perf_counter() - t0


def worker(night: Path, work: Path) -> dict:
    """Run the three stages of the code on ``sys.path`` and time them with their floors."""
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(_HERE))
    from _measure import measured
    from astropy.table import Table

    from tgpcore.astrometry import solve_image
    from tgpcore.io.tables import write_table
    from tgpcore.photometry.catalog import measure_stack
    from tgpcore.registration import (
        align_to_reference,
        exposure_classes,
        make_stack,
        prepare_reference,
        refine_xcorr_alignments,
    )
    from tgpcore.registration.mosaic import make_mosaic

    res: dict = {"tree": str(Path(sys.modules["tgpcore"].__file__).resolve().parents[1])}
    work.mkdir(parents=True, exist_ok=True)
    pointings = night_groups(night)
    frames = [f["path"] for p in pointings.values() for f in p["frames"]]

    # register ----------------------------------------------------------------
    with measured(res, "register_floor_read"):
        _floor_read(frames)
    stacks: dict[str, dict] = {}
    with measured(res, "register"):
        for key, p in sorted(pointings.items()):
            paths = [f["path"] for f in p["frames"]]
            ref = prepare_reference(paths)
            al = {a["path"]: a for a in (align_to_reference(q, ref) for q in paths)}
            by_f: dict[str, list[dict]] = {}
            for f in p["frames"]:
                by_f.setdefault(f["filter"], []).append(f)
            for filt, members in sorted(by_f.items()):
                cls = exposure_classes({f["path"]: f["exptime_s"] for f in members})
                for c in ("short", "long"):
                    alc = [al[f["path"]] for f in members if cls[f["path"]] == c]
                    if not alc:
                        continue
                    if sum(a["status"] == "ok" and a["method"] == "xcorr" for a in alc) >= 2:
                        alc = refine_xcorr_alignments(alc, ref)
                    sid = f"{key}/{filt}/{c}"
                    st = make_stack(alc, ref["shape"], str(work / "stacks" /
                                                          f"{sid.replace('/', '_')}.fits"),
                                    label=sid)
                    if st["status"] == "ok":
                        stacks[sid] = {"path": st["path"], "target": p["target"],
                                       "filter": filt, "cls": c, "ra": p["ra"],
                                       "dec": p["dec"]}
    res["register_floor_write_s"] = _floor_write_images(
        [s["path"] for s in stacks.values()], work / "floor", ("EXPMAP",))
    res["n_frames"], res["n_stacks"] = len(frames), len(stacks)

    # solve (untimed) ----------------------------------------------------------
    gaia = Table.read(night / "night" / "truth" / "gaia.ecsv")
    for st in stacks.values():
        sol = solve_image(st["path"], 0.5, st["ra"], st["dec"], reference=gaia,
                          steps=("catalogue",))
        st["solved"] = sol["status"] == "ok"

    # mosaic ------------------------------------------------------------------
    groups: dict[str, list[str]] = {}
    for _sid, st in sorted(stacks.items()):
        if st["solved"]:
            groups.setdefault(f"{st['target']}/{st['filter']}/{st['cls']}", []).append(st["path"])
    mos_paths = {}
    with measured(res, "mosaic_floor_read"):
        _floor_read([p for ps in groups.values() for p in ps])
    with measured(res, "mosaic"):
        for mid, paths in sorted(groups.items()):
            out = make_mosaic(paths, work / "mosaics" / f"{mid.replace('/', '_')}.fits",
                              label=mid)
            mos_paths[mid] = out["path"]
    res["mosaic_floor_write_s"] = _floor_write_images(list(mos_paths.values()),
                                                      work / "floor", ("WEIGHT", "COVERAGE"))
    res["n_mosaics"] = len(mos_paths)

    # photometry --------------------------------------------------------------
    cats = {}
    with measured(res, "photometry_floor_read"):
        _floor_read([s["path"] for s in stacks.values()])
    with measured(res, "photometry"):
        for sid, st in sorted(stacks.items()):
            r = measure_stack(st["path"], str(work / "catalogs" / f"{sid.replace('/', '_')}.ecsv"))
            if r["status"] == "ok":
                cats[sid] = r["path"]
    try:  # our aperture and growth-curve code against photutils' on the same stars
        res["library"] = library_comparison(stacks, cats)
    except ImportError:  # a baseline tree without these functions
        pass
    tabs = [Table.read(p) for p in cats.values()]
    t0 = time.perf_counter()
    for k, t in enumerate(tabs):
        write_table(t, work / "floor" / f"cat_{k}.ecsv")
    res["photometry_floor_write_s"] = time.perf_counter() - t0
    res["stacks"] = {k: v["path"] for k, v in stacks.items()}
    res["mosaics"] = mos_paths
    res["catalogs"] = cats
    return res


def library_comparison(stacks: dict, cats: dict) -> dict:
    """Our vectorised apertures (:func:`aperture_photometry_table`) and growth curves
    (:func:`aperture_fluxes` at many radii) against photutils' ``ApertureStats`` (all stars
    in one call: sums, and sigma-clipped annulus medians) and ``profiles.CurveOfGrowth``
    (one call per star), on the stars of every catalogue; times and agreement."""
    import numpy as np
    from astropy.stats import SigmaClip
    from astropy.table import Table
    from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture
    from photutils.profiles import CurveOfGrowth

    from tgpcore.io.fits import read_ccd
    from tgpcore.photometry.aperture import aperture_fluxes, aperture_photometry_table

    t = {"ours_ap_s": 0.0, "lib_ap_s": 0.0, "ours_cog_s": 0.0, "lib_cog_s": 0.0}
    dflux, dcog, n_ap, n_cog = [], [], 0, 0
    for sid, cat in cats.items():
        ccd = read_ccd(stacks[sid]["path"])
        tab = Table.read(cat)
        data, err = np.asarray(ccd.data, float), ccd.uncertainty.array.astype(float)
        mask = np.asarray(ccd.mask, bool)
        x, y = np.asarray(tab["x"], float), np.asarray(tab["y"], float)
        fwhm = float(tab.meta.get("fwhm_px", 3.5)) if tab.meta else 3.5
        r_ap, r_in, r_out = 1.2 * fwhm, 3.0 * fwhm, 5.0 * fwhm
        t0 = time.perf_counter()
        ours = aperture_photometry_table(data, err, mask, x, y, r_ap, r_in, r_out)
        t["ours_ap_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        pos = np.column_stack([x, y])
        bkg = ApertureStats(data, CircularAnnulus(pos, r_in, r_out), mask=mask,
                            sigma_clip=SigmaClip(sigma=3.0, maxiters=3)).median
        ap = CircularAperture(pos, r_ap)
        st = ApertureStats(data, ap, error=err, mask=mask, sum_method="exact")
        lib_flux = np.asarray(st.sum, float) - np.asarray(bkg, float) * np.asarray(
            ap.area_overlap(data, mask=mask))
        t["lib_ap_s"] += time.perf_counter() - t0
        good = (np.asarray(ours["flags"]) == 0) & (np.asarray(ours["flux"]) > 0)
        dflux.append(((np.asarray(ours["flux"]) - lib_flux) / np.asarray(ours["flux_err"]))[good])
        n_ap += int(good.sum())
        # growth curves of the 30 brightest clean stars, 12 radii to 4 FWHM
        idx = np.flatnonzero(good)[:30]
        radii = np.linspace(0.5, 4.0, 12) * fwhm
        t0 = time.perf_counter()
        f_ours, _, _ = aperture_fluxes(data, err, mask, x[idx], y[idx], radii)
        t["ours_cog_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        f_lib = np.array([CurveOfGrowth(data, (x[i], y[i]), radii, error=err, mask=mask,
                                        method="exact").profile for i in idx])
        t["lib_cog_s"] += time.perf_counter() - t0
        if len(idx):
            dcog.append(np.abs(f_ours - f_lib).max(1) / np.abs(f_ours[:, -1]))
            n_cog += len(idx)
    d = np.concatenate(dflux) if dflux else np.zeros(0)
    c = np.concatenate(dcog) if dcog else np.zeros(0)
    return {**t, "n_ap_stars": n_ap, "n_cog_stars": n_cog,
            "ap_median_abs_diff_sigma": float(np.median(np.abs(d))) if d.size else None,
            "ap_p99_abs_diff_sigma": float(np.percentile(np.abs(d), 99)) if d.size else None,
            "cog_max_rel_diff": float(c.max()) if c.size else None}


# --------------------------------------------------------------------------- comparison
def compare(ours: dict, base: dict) -> dict:
    """Agreement of the products: stacks and mosaics pixel by pixel, catalogues by star."""
    import numpy as np
    from astropy.io import fits
    from astropy.table import Table
    from scipy.spatial import cKDTree

    out: dict = {}

    def img_diff(a, b):
        with fits.open(a) as ha, fits.open(b) as hb:
            da, db = ha[0].data.astype(float), hb[0].data.astype(float)
            ua = ha["UNCERT"].data.astype(float)
            if da.shape != db.shape:
                return float("nan")
            ok = (ha["MASK"].data == 0) & (hb["MASK"].data == 0) & (ua > 0)
            return float(np.median(np.abs(da - db)[ok] / ua[ok]))

    out["stack_median_absdiff_sigma"] = max(
        (img_diff(ours["stacks"][k], base["stacks"][k]) for k in ours["stacks"]
         if k in base["stacks"]), default=float("nan"))
    out["mosaic_median_absdiff_sigma"] = max(
        (img_diff(ours["mosaics"][k], base["mosaics"][k]) for k in ours["mosaics"]
         if k in base["mosaics"]), default=float("nan"))
    dm, n = [], 0
    for k, p in ours["catalogs"].items():
        if k not in base["catalogs"]:
            continue
        a, b = Table.read(p), Table.read(base["catalogs"][k])
        good = lambda t: t[(t["flags"] == 0) & (t["snr"] > 50)]  # noqa: E731
        a, b = good(a), good(b)
        if len(a) < 3 or len(b) < 3:
            continue
        d, j = cKDTree(np.column_stack([b["x"], b["y"]])).query(
            np.column_stack([a["x"], a["y"]]), distance_upper_bound=0.5)
        ok = np.isfinite(d)
        dm.append(np.asarray(a["mag_inst"])[ok] - np.asarray(b["mag_inst"])[j[ok]])
        n += int(ok.sum())
    if dm:
        d = np.concatenate(dm)
        out["phot_n_matched"] = n
        out["phot_median_dmag"] = float(np.median(d))
        out["phot_p95_abs_dmag"] = float(np.percentile(np.abs(d), 95))
    return out


def run_tree(tree: Path, night: Path, work: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "2"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--night", str(night),
           "--work", str(work)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=str(tree), capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"worker in {tree} failed:\n{p.stderr[-4000:]}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.perf_counter() - t0
    return res


def baseline_tree(dest: Path, ref: str = "main") -> Path:
    """``git archive`` of ``ref`` into ``dest`` (no worktree, nothing in the repository)."""
    dest.mkdir(parents=True, exist_ok=True)
    arch = subprocess.run(["git", "-C", str(_ROOT), "archive", ref], capture_output=True,
                          check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=arch, check=True)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--night", type=Path, default=None,
                    help="prepared night folder (default: a temporary one)")
    ap.add_argument("--baseline-tree", type=Path, default=None,
                    help="checkout of the baseline (default: git archive main)")
    ap.add_argument("--baseline-ref", default="main")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.night, args.work)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-image-"))
    try:
        night = args.night or tmp / "night"
        sys.path.insert(0, str(_ROOT))
        t0 = time.perf_counter()
        prepare_night(night, args.preset)
        print(f"night ready ({night}, {time.perf_counter() - t0:.1f} s)", flush=True)
        base = args.baseline_tree or baseline_tree(tmp / "baseline", args.baseline_ref)
        ours = run_tree(_ROOT, night, tmp / "ours")
        main_ = run_tree(base, night, tmp / "main")
        agree = compare(ours, main_)
        rows, js = [], {"bench": "image_stages", "preset": args.preset,
                        "n_frames": ours["n_frames"], "n_stacks": ours["n_stacks"],
                        "n_mosaics": ours["n_mosaics"]}
        print(f"\n{'stage':<11}{'ours s':>9}{'main s':>9}{'speedup':>9}{'read s':>8}"
              f"{'write s':>9}{'floor s':>9}{'ours/floor':>11}{'main/floor':>11}"
              f"{'peak MB':>9}{'main MB':>9}")
        for s in STAGES:
            floor = ours[f"{s}_floor_read_s"] + ours[f"{s}_floor_write_s"]
            row = (s, ours[f"{s}_s"], main_[f"{s}_s"], main_[f"{s}_s"] / ours[f"{s}_s"],
                   ours[f"{s}_floor_read_s"], ours[f"{s}_floor_write_s"], floor,
                   ours[f"{s}_s"] / floor, main_[f"{s}_s"] / floor,
                   ours[f"{s}_peak_mb"], main_[f"{s}_peak_mb"])
            rows.append(row)
            print(f"{row[0]:<11}{row[1]:>9.2f}{row[2]:>9.2f}{row[3]:>9.2f}{row[4]:>8.2f}"
                  f"{row[5]:>9.2f}{row[6]:>9.2f}{row[7]:>11.2f}{row[8]:>11.2f}"
                  f"{row[9]:>9.0f}{row[10]:>9.0f}")
            js.update({f"{s}_ours_s": round(row[1], 3), f"{s}_main_s": round(row[2], 3),
                       f"{s}_speedup": round(row[3], 3), f"{s}_floor_s": round(floor, 3),
                       f"{s}_compute_s": round(row[1] - floor, 3),
                       f"{s}_io_floor_ratio": round(row[7], 3),
                       f"{s}_main_io_floor_ratio": round(row[8], 3)})
        ours_t = sum(ours[f"{s}_s"] for s in STAGES)
        main_t = sum(main_[f"{s}_s"] for s in STAGES)
        js.update({"ours_s": round(ours_t, 3), "baseline_s": round(main_t, 3),
                   "speedup": round(main_t / ours_t, 3),
                   "peak_rss_mb": round(max(ours[f"{s}_peak_mb"] for s in STAGES)),
                   "baseline_peak_rss_mb": round(max(main_[f"{s}_peak_mb"] for s in STAGES)),
                   **{k: (round(v, 4) if isinstance(v, float) else v)
                      for k, v in agree.items()}})
        lib = ours.get("library")
        if lib:
            print(f"\napertures ({lib['n_ap_stars']} stars): ours {lib['ours_ap_s']:.2f} s, "
                  f"photutils ApertureStats {lib['lib_ap_s']:.2f} s, median |diff| "
                  f"{lib['ap_median_abs_diff_sigma']:.3g} sigma (p99 "
                  f"{lib['ap_p99_abs_diff_sigma']:.3g})")
            print(f"growth curves ({lib['n_cog_stars']} stars): ours {lib['ours_cog_s']:.2f} s,"
                  f" photutils CurveOfGrowth {lib['lib_cog_s']:.2f} s, max rel diff "
                  f"{lib['cog_max_rel_diff']:.2g}")
            js.update({f"lib_{k}": (round(v, 4) if isinstance(v, float) else v)
                       for k, v in lib.items()})
        print("\nagreement with main:", json.dumps(agree))
        print(json.dumps(js))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", file=sys.stderr)


if __name__ == "__main__":
    main()
