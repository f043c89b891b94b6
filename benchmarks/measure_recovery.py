"""Recovery of cluster parameters from simulated nights, end to end (issue 21).

Each night (the demo's detector and schedule, one pointing, two dithers per filter, the
cluster's age, distance, reddening and metallicity varied with the seed) goes from raw frames
through every stage of the full run (threads runner) to the fit of its own U, B, V. The
script reports each parameter's error against the truth, in units of the fit's total error,
and the fraction of truths inside the 68 % intervals.

    .venv/bin/python benchmarks/measure_recovery.py [--nights 5] [--out DIR]

The last line of the output is JSON. Not a benchmark of speed: it measures the science.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: Cluster settings of the nights (log age, [M/H], distance in pc, E(B-V)); drawn at grid
#: nodes of age and metallicity so that the error measured is the fit's, not interpolation's.
CLUSTERS = [(8.64, 0.05, 1500.0, 0.30), (9.0, 0.0, 1200.0, 0.15), (8.4, -0.1, 2000.0, 0.45),
            (9.3, 0.0, 1000.0, 0.08), (8.8, 0.1, 1700.0, 0.25), (9.1, -0.2, 1400.0, 0.20),
            (8.6, 0.0, 2200.0, 0.35), (9.2, 0.05, 900.0, 0.05)]


def run_night(k: int, root: Path) -> dict:
    """Simulate night ``k`` and run it end to end; return the truth and the fit."""
    from flows.full_run import FullRunParams, run
    from flows.runners import RunnerSettings
    from tgpcore.simulate import simulate_night

    age, mh, dist, ebv = CLUSTERS[k % len(CLUSTERS)]
    nt = simulate_night(root / f"night{k}", preset="demo", seed=100 + k, workers=2,
                        pointing_offsets=((0.0, 0.0),), n_dither=2, log_age=age, mh=mh,
                        distance_pc=dist, ebv=ebv)
    params = FullRunParams(data=str(nt.raw_dir), out=str(root / f"out{k}"),
                           gaia_file=str(nt.gaia_path), standards_catalog=str(nt.standards_path),
                           runner=RunnerSettings(kind="threads", n_workers=2))
    t0 = time.perf_counter()
    result = run(params)
    truth = nt.params()["cluster"]
    fit = result["isochrone_fit"][truth["name"]]
    return {"night": k, "seconds": round(time.perf_counter() - t0, 1), "truth": truth,
            "fit": fit, "photometry": fit.get("photometry")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nights", type=int, default=5)
    ap.add_argument("--out", help="keep the nights here (default: a temporary folder)")
    args = ap.parse_args(argv)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="recovery-"))
    root.mkdir(parents=True, exist_ok=True)
    keys = (("log_age", "log_age"), ("dm", "distance_modulus"), ("ebv", "ebv"), ("mh", "mh"))
    rows, inside, pulls = [], {k: [] for k, _ in keys}, {k: [] for k, _ in keys}
    try:
        for k in range(args.nights):
            r = run_night(k, root)
            if r["fit"].get("status") != "ok":
                print(f"night {k}: fit failed: {r['fit'].get('message')}")
                continue
            s = r["fit"]["summary"]
            line = [f"night {k} ({r['photometry']}, {r['seconds']:.0f} s):"]
            for key, tkey in keys:
                truth = float(r["truth"][tkey])
                err = float(s[f"{key}_err"])
                d = float(s[key]) - truth
                inside[key].append(abs(d) <= err)
                pulls[key].append(d / err if err > 0 else np.inf)
                line.append(f"{key} {s[key]:.3f}±{err:.3f} (truth {truth:.3f}, {d:+.3f})")
            rows.append(r)
            print(" ".join(line), flush=True)
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    coverage = {k: float(np.mean(v)) if v else None for k, v in inside.items()}
    pooled = float(np.mean([x for v in inside.values() for x in v])) if rows else None
    med = {k: float(np.median(np.abs(v))) if v else None for k, v in pulls.items()}
    print(f"nights fitted: {len(rows)}; 68 % coverage per parameter {coverage}; pooled "
          f"{pooled}; median |error|/total {med}")
    print(json.dumps({"measure": "recovery", "nights": len(rows), "coverage": coverage,
                      "coverage_pooled": pooled, "median_abs_pull": med,
                      "pulls": {k: [round(x, 3) for x in v] for k, v in pulls.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
