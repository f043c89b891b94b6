"""The calibration stage of the real CAHA/CAFOS night of NGC 2420 against a simulated night of
the same size, in one run.

Issue 20 asks that the real night calibrate within 2x the time of a simulated night of the same
shape: before the fix the master bias's 2 % of holes made L.A.Cosmic find 17 700 "cosmic rays"
a frame and the stage took 157 s, against about 5 s. The simulated night is the ``realsky``
preset at the real night's size: 1024x1024, 2 biases, one flat per filter (B, V), and 12
science frames of 3 s and 60 s (the real night has 11 of 2-3 s and 60 s), without darks. Both are calibrated the way the calibrate
flow's tasks do it (tgpcore's master and frame functions), in one process, one after the other,
twice each (the median is reported).

    .venv/bin/python benchmarks/bench_real_night.py [--repeat N]

The last line of the output is JSON. Needs ../shared/data/ngc2420_caha.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
warnings.simplefilter("ignore")
CAHA = ROOT.parent / "shared" / "data" / "ngc2420_caha"


def simulated_night(root: Path) -> Path:
    """The realsky preset shaped like the real night."""
    from tgpcore.simulate import simulate_night

    nt = simulate_night(root, preset="realsky", seed=5, nx=1024, ny=1024, filters=("B", "V"),
                        n_flat_per_filter=1, short_exptime_s=3.0,
                        long_exptime_s={"U": 60.0, "B": 60.0, "V": 60.0}, n_dither=5,
                        standard_visits=(), core_radius_arcmin=1.2, tidal_radius_arcmin=9.0,
                        n_cluster_systems=2500, region_margin_arcmin=1.5, workers=2)
    return nt.raw_dir


def calibrate(raw: Path, out: Path) -> tuple[float, dict]:
    """Masters and frames of a night; wall time and what was made."""
    from _calibrated import build_masters, calibrate_entries

    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    inv, plan, masters = build_masters(raw, out)
    res = calibrate_entries(inv, plan, masters, out)
    dt = time.perf_counter() - t0
    qc = [r["qc"] for r in res.values() if r["status"] == "ok"]
    return dt, {"n_frames": len(res), "n_masters": len(masters),
                "cosmic_ray_pixels_median": float(np.median([q["cosmic_ray_pixels"]
                                                             for q in qc])),
                "masked_fraction_median": float(np.median([q["masked_fraction"] for q in qc]))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    if not CAHA.is_dir():
        print(f"real night not found at {CAHA}")
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-real-"))
    try:
        sim_raw = simulated_night(work / "sim")
        real_t, sim_t = [], []
        for _ in range(args.repeat):
            t, real_info = calibrate(CAHA, work / "real-out")
            real_t.append(t)
            t, sim_info = calibrate(sim_raw, work / "sim-out")
            sim_t.append(t)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    real_s, sim_s = float(np.median(real_t)), float(np.median(sim_t))
    print(f"{'night':<12} {'frames':>6} {'masters':>7} {'seconds':>8}  {'CR px (median)':>14}"
          f"  {'masked':>7}")
    for name, s, info in (("real CAFOS", real_s, real_info), ("simulated", sim_s, sim_info)):
        print(f"{name:<12} {info['n_frames']:>6} {info['n_masters']:>7} {s:8.2f}  "
              f"{info['cosmic_ray_pixels_median']:>14.0f}  {info['masked_fraction_median']:7.4f}")
    print(f"real / simulated: {real_s / sim_s:.2f} (issue 20: <= 2)")
    print(json.dumps({"bench": "real_night_calibration", "real_s": round(real_s, 3),
                      "simulated_s": round(sim_s, 3), "ratio": round(real_s / sim_s, 3),
                      "real_runs_s": [round(x, 3) for x in real_t],
                      "simulated_runs_s": [round(x, 3) for x in sim_t],
                      "real_cosmic_ray_pixels_median": real_info["cosmic_ray_pixels_median"],
                      "real_masked_fraction_median": real_info["masked_fraction_median"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
