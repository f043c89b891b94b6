"""Benchmark of the calibration stage against the Astropy CCD Data Reduction Guide's way.

Workload: the simulator's ``bench`` night (2048x2048, 72 science and standard frames, 15 biases,
2x6 darks, 10 flats per filter). Ours: tgpcore's master and frame functions dispatched on the
calibrate flow's local Dask cluster (``flows.runners.local_cluster``), one task per master and per
frame, each started as soon as its masters exist, as the flow does (without Prefect's own
overhead; the cluster is up before the clock starts, as the flow's is before this stage).
Baseline: ``ccdproc.combine`` for the masters and, per frame,
``subtract_overscan``/``trim_image``/``create_deviation``/``subtract_bias``/``gain_correct``/
``subtract_dark``/``flat_correct``/``cosmicray_lacosmic`` and ``CCDData.write``, in one
process. I/O floor: reading every input and writing every output with ``astropy.io.fits``.
Each phase starts with no dirty pages, its inputs read once into the page cache, and after
--settle seconds of rest, in which this virtual machine hands freed memory back to its host (see
``ready``). The floor is also timed as this benchmark timed it before 2026-12-06, right after
deleting the last phase's products (``io_floor_recycled_*``).

    .venv/bin/python benchmarks/bench_calibration.py [--night DIR] [--keep] [--repeat N]
        [--settle S] [--skip-baseline]

Ours and the floor run --repeat times (3), and their medians are reported (the same code varied
by 20 % from run to run on this machine); the baseline, 15x slower, runs once. The last line of
the output is JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import bench_night, measured  # noqa: E402

warnings.simplefilter("ignore")


def frame_input(rec) -> dict:
    return {"path": rec.path, "hdu_index": rec.hdu_index or 0,
            "exptime_s": float(rec.exptime_s or 0.0), "summary": rec.header}


@contextlib.contextmanager
def cluster_client(n_workers: int):
    """The calibrate flow's local Dask cluster, its workers with tgpcore imported.

    It is started before the stage is timed: the flow's task runner starts it with the flow,
    before the inventory and plan stages, so the calibration stage never waits for it (0.7 s
    to start and 0.15 s to stop here).
    """
    from distributed import Client

    from flows.runners import local_cluster

    with local_cluster(n_workers) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("tgpcore.calibration.products"))
        yield client


def run_ours(inv, plan, out: Path, client) -> dict[str, str]:
    """Every master and frame as soon as its masters exist (the calibrate flow's schedule);
    one Dask task each, on ``client``'s cluster."""
    from distributed import as_completed

    from tgpcore.calibration.products import make_calibrated, make_master
    from tgpcore.calibration.schedule import (
        CalibrationSchedule,
        frame_masters,
        master_inputs,
        master_threads,
    )

    recs = {r.path: r for r in inv.records}
    sched = CalibrationSchedule(plan)
    building, frames = as_completed(), []
    n_workers = len(client.scheduler_info()["workers"])

    def start():
        ready_masters = sched.ready_masters()
        threads = master_threads(len(ready_masters), building.count() + len(frames), n_workers)
        for spec in ready_masters:
            deps = master_inputs(spec)
            fut = client.submit(
                make_master, spec.kind, spec.key, [frame_input(recs[p]) for p in spec.members],
                str(out / "masters" / f"{spec.key}.fits"),
                sched.paths.get(deps.get("bias")), sched.paths.get(deps.get("dark")), threads,
                pure=False)
            building.add(fut)
        ready, lost = sched.ready_frames()
        if lost:
            raise RuntimeError(f"masters failed: {lost}")
        frames.extend(client.submit(
            make_calibrated, frame_input(recs[e.path]),
            str(out / "calibrated" / Path(e.path).name),
            *(sched.paths.get(frame_masters(e).get(k)) for k in ("bias", "dark", "flat")),
            pure=False) for e in ready)

    start()
    for fut in building:
        res = fut.result()
        sched.finished(res["key"], res["path"])
        start()
    results = [f.result() for f in frames]
    bad = [r for r in results if r["status"] != "ok"]
    if bad:
        raise RuntimeError(f"frames failed: {bad[:3]}")
    return {r["path"]: r["product"] for r in results}


def run_baseline(inv, plan, out: Path) -> dict[str, str]:
    """The Astropy CCD Data Reduction Guide's way, in one process."""
    import ccdproc
    from astropy import units as u
    from astropy.modeling.models import Polynomial1D
    from astropy.nddata import CCDData

    recs = {r.path: r for r in inv.records}

    def reduce_raw(path: str) -> CCDData:
        h = recs[path].header
        ccd = CCDData.read(path, unit="adu")
        ccd = ccdproc.subtract_overscan(ccd, fits_section=h["overscan_section"], median=True,
                                        overscan_axis=1, model=Polynomial1D(0))
        return ccdproc.trim_image(ccd, fits_section=h["trim_section"])

    def combine(ccds, **kw):
        return ccdproc.combine(ccds, method="average", sigma_clip=True,
                               sigma_clip_low_thresh=3, sigma_clip_high_thresh=3,
                               sigma_clip_func=np.ma.median, sigma_clip_dev_func=np.ma.std,
                               mem_limit=1e9, **kw)

    gain = {p: recs[p].header["gain_e_per_adu"] * u.electron / u.adu for p in recs}
    masters: dict[str, CCDData] = {}
    for kind in ("bias", "dark", "flat"):
        for key, spec in plan.masters.items():
            if spec.kind != kind:
                continue
            ccds = []
            for p in spec.members:
                ccd = reduce_raw(p)
                if kind != "bias":
                    ccd = ccdproc.subtract_bias(ccd, masters[spec.depends["bias"]])
                    ccd = ccdproc.gain_correct(ccd, gain[p])
                if kind == "flat" and spec.depends.get("dark"):
                    ccd = ccdproc.subtract_dark(ccd, masters[spec.depends["dark"]],
                                                exposure_time="EXPTIME", exposure_unit=u.s,
                                                scale=True)
                ccds.append(ccd)
            if kind == "flat":
                m = combine(ccds, scale=lambda a: 1.0 / np.ma.median(a))
                m.data = m.data / np.median(m.data)
            else:
                m = combine(ccds)
            m.header["EXPTIME"] = recs[spec.members[0]].exptime_s
            masters[key] = m
            m.write(out / "masters" / f"{key}.fits", overwrite=True)
    products = {}
    for e in plan.entries:
        if e.status != "ok":
            continue
        h = recs[e.path].header
        ccd = reduce_raw(e.path)
        ccd = ccdproc.create_deviation(ccd, gain=gain[e.path],
                                       readnoise=h["read_noise_e"] * u.electron)
        ccd = ccdproc.subtract_bias(ccd, masters[e.bias_key])
        ccd = ccdproc.gain_correct(ccd, gain[e.path])
        if e.dark_key:
            ccd = ccdproc.subtract_dark(ccd, masters[e.dark_key], exposure_time="EXPTIME",
                                        exposure_unit=u.s, scale=True)
        flat = masters[e.flat_key]
        ccd = ccdproc.flat_correct(ccd, flat, norm_value=float(np.median(flat.data)))
        ccd = ccdproc.cosmicray_lacosmic(ccd, sigclip=4.5, sigfrac=0.3, objlim=5.0, niter=2,
                                         readnoise=h["read_noise_e"], gain=1.0,
                                         satlevel=np.inf)
        dest = out / "calibrated" / Path(e.path).name
        ccd.write(dest, overwrite=True)
        products[e.path] = str(dest)
    return products


def run_io_floor(inv, plan, ours: dict[str, str], masters: list[str], out: Path) -> None:
    """Read every input and write every output (calibrated frames and masters) with
    astropy.io.fits alone."""
    from astropy.io import fits

    inputs = {p for m in plan.masters.values() for p in m.members} | set(ours)
    for p in sorted(inputs):
        fits.getdata(p)
    for i, prod in enumerate(sorted(ours.values()) + sorted(masters)):
        with fits.open(prod) as hdul:
            hdus = fits.HDUList([h.copy() for h in hdul])
        hdus.writeto(out / f"floor_{i}.fits", overwrite=True)


def ready(paths: list[str], settle_s: float = 8.0) -> None:
    """Bring the machine to the same state before every phase: no dirty pages (the kernel's
    write-back of the last phase's gigabytes must not be charged to the next), ``paths`` read
    once into the page cache, and then ``settle_s`` seconds of rest.

    The rest matters on a virtual machine like this one, whose balloon driver hands memory
    that stays free for about 2 s back to the host: the next first touch of such a page costs
    the guest kernel about 10 us. Writing a new 42 MB file took 100 ms of system time with
    such pages and 7-9 ms with pages freed the moment before (measured here, 2026-12-06).
    Every phase writes gigabytes of new files: without the rest, a phase that follows a large
    deletion (the floor used to) writes into recycled pages and the others into returned
    ones, which made the floor look 2-3x cheaper than the same writes cost any other phase.
    """
    os.sync()
    for p in paths:
        with open(p, "rb") as fh:
            while fh.read(1 << 23):
                pass
    time.sleep(settle_s)


def agreement(ours: dict[str, str], base: dict[str, str]) -> dict[str, float]:
    """Relative agreement of the calibrated pixels (where neither side masked a pixel)."""
    from astropy.nddata import CCDData

    from tgpcore.io.fits import read_ccd

    fracs, worst = [], []
    for raw, prod in ours.items():
        a = read_ccd(prod)
        b = CCDData.read(base[raw], unit="electron")
        good = ~a.mask & ~(b.mask if b.mask is not None else False)
        scale = np.maximum(np.abs(b.data[good]), a.uncertainty.array[good])
        rel = np.abs(a.data[good] - b.data[good]) / scale
        fracs.append(float(np.mean(rel <= 1e-5)))
        worst.append(float(np.median(rel)))
    return {"frac_pixels_within_1e-5": float(np.min(fracs)),
            "median_rel_diff": float(np.max(worst))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--night", default=str(Path(tempfile.gettempdir()) / "tgp-bench-night"),
                    help="where the bench night is (simulated there if missing)")
    ap.add_argument("--keep", action="store_true", help="keep the products")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds of ours (2 and 1 workers) and the I/O floor; medians reported")
    ap.add_argument("--settle", type=float, default=8.0,
                    help="seconds of rest before each phase (see ready())")
    ap.add_argument("--skip-baseline", action="store_true",
                    help="leave out the ccdproc baseline (6-7 minutes): for quick comparisons "
                         "while working; speedup and agreement are then null")
    args = ap.parse_args()
    night, inv, plan = bench_night(args.night)
    n_sci = sum(e.status == "ok" for e in plan.entries)
    # What every phase imports is imported before any is timed (the flow has Prefect, Dask
    # and the science stack loaded before the stage starts; importing them took 1.5 s).
    import ccdproc  # noqa: F401
    import distributed  # noqa: F401

    import flows.runners  # noqa: F401
    import tgpcore.calibration.products  # noqa: F401
    work = Path(tempfile.mkdtemp(prefix="tgp-bench-cal-"))
    runs: dict[str, list[float]] = {"ours2": [], "ours1": [], "floor": [],
                                    "floor_recycled": []}
    peaks: dict[str, list[float]] = {k: [] for k in runs}
    r: dict[str, float] = {}

    def fresh(name: str) -> Path:
        shutil.rmtree(work / name, ignore_errors=True)
        (work / name / "masters").mkdir(parents=True)
        (work / name / "calibrated").mkdir(parents=True)
        return work / name

    def timed(name: str, fn, *a):
        res = {}
        with measured(res, name):
            out = fn(*a)
        runs[name].append(res[f"{name}_s"])
        peaks[name].append(res[f"{name}_peak_mb"])
        return out

    try:
        # Every phase starts alike: no dirty pages left by the one before (the kernel's
        # write-back of its gigabytes must not be charged to the next) and its inputs in the
        # page cache (on this machine the cache does not keep the whole run: the floor, last,
        # found most of its files evicted and measured 12.9 s instead of 5.7 s).
        raw = sorted({p for m in plan.masters.values() for p in m.members}
                     | {e.path for e in plan.entries if e.status == "ok"})
        # Ours and the floor, --repeat rounds (the same code's wall time varied by 20 % from
        # run to run on this machine; the medians are reported), then the baseline once.
        ours: dict[str, str] = {}
        masters: list[str] = []
        for k in range(args.repeat):
            with cluster_client(2) as client:
                ready(raw, args.settle)
                got = timed("ours2", run_ours, inv, plan, fresh("ours2" if k == 0 else "run"),
                            client)
            if k == 0:
                ours = got
                masters = sorted(str(p) for p in (work / "ours2" / "masters").glob("*.fits"))
            shutil.rmtree(work / "run", ignore_errors=True)
            with cluster_client(1) as client:
                ready(raw, args.settle)
                timed("ours1", run_ours, inv, plan, fresh("run"), client)
            shutil.rmtree(work / "run", ignore_errors=True)
            ready(raw + sorted(ours.values()) + masters, args.settle)  # the floor copies ours
            timed("floor", run_io_floor, inv, plan, ours, masters, fresh("floor"))
            # The floor as this benchmark used to measure it: right after deleting the last
            # phase's products, so that it writes into the pages they just freed.
            shutil.rmtree(work / "floor", ignore_errors=True)
            timed("floor_recycled", run_io_floor, inv, plan, ours, masters, fresh("floor"))
            shutil.rmtree(work / "floor", ignore_errors=True)
        if args.skip_baseline:
            r["base_s"] = r["base_peak_mb"] = float("nan")
            agree = {"frac_pixels_within_1e-5": float("nan"), "median_rel_diff": float("nan")}
        else:
            ready(raw, args.settle)
            with measured(r, "base"):
                base = run_baseline(inv, plan, fresh("base"))
            agree = agreement(ours, base)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for name in runs:
        r[f"{name}_s"] = float(np.median(runs[name]))
        r[f"{name}_peak_mb"] = float(np.max(peaks[name]))
    out = {
        "bench": "calibration", "frames": n_sci, "shape": "2048x2048",
        "ours_s": round(r["ours2_s"], 2), "baseline_s": round(r["base_s"], 2),
        "speedup": round(r["base_s"] / r["ours2_s"], 2),
        "peak_rss_mb": round(r["ours2_peak_mb"]), "baseline_peak_rss_mb": r["base_peak_mb"] if args.skip_baseline else round(r["base_peak_mb"]),
        "io_floor_s": round(r["floor_s"], 2), "io_floor_ratio": round(r["ours2_s"] / r["floor_s"], 2),
        "ours_1worker_s": round(r["ours1_s"], 2),
        "dask_speedup": round(r["ours1_s"] / r["ours2_s"], 2), **agree,
        "ours_s_runs": [round(t, 2) for t in runs["ours2"]],
        "ours_1worker_s_runs": [round(t, 2) for t in runs["ours1"]],
        "io_floor_s_runs": [round(t, 2) for t in runs["floor"]],
        "io_floor_recycled_s": round(r["floor_recycled_s"], 2),
        "io_floor_recycled_ratio": round(r["ours2_s"] / r["floor_recycled_s"], 2),
        "io_floor_recycled_s_runs": [round(t, 2) for t in runs["floor_recycled"]],
    }
    print(f"{'':<24}{'wall s':>10}{'peak RSS MB':>14}")
    print(f"{'ours (2 Dask workers)':<24}{r['ours2_s']:>10.1f}{r['ours2_peak_mb']:>14.0f}")
    print(f"{'ours (1 Dask worker)':<24}{r['ours1_s']:>10.1f}{r['ours1_peak_mb']:>14.0f}")
    print(f"{'ccdproc baseline':<24}{r['base_s']:>10.1f}{r['base_peak_mb']:>14.0f}")
    print(f"{'I/O floor':<24}{r['floor_s']:>10.1f}{r['floor_peak_mb']:>14.0f}")
    print(f"{'I/O floor, recycled':<24}{r['floor_recycled_s']:>10.1f}"
          f"{r['floor_recycled_peak_mb']:>14.0f}")
    print(f"speed-up vs baseline {out['speedup']}x; vs I/O floor {out['io_floor_ratio']}x; "
          f"2 workers vs 1: {out['dask_speedup']}x; pixels agreeing to 1e-5: "
          f"{agree['frac_pixels_within_1e-5']:.4f} (worst frame)")
    print(json.dumps({k: None if isinstance(v, float) and np.isnan(v) else v
                      for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
