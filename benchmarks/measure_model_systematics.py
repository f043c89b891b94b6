"""How far the packaged PARSEC grid's answers stray when the stars come from another PARSEC
release: the measurement behind ``tgpcore.fitting.systematics.MODEL_FLOOR``.

    .venv/bin/python benchmarks/measure_model_systematics.py [--release both] [--workers 2]
                                                             [--out FILE]

Clusters are drawn from two other PARSEC releases than the packaged grid, with other
bolometric corrections: the CMD 3.7 isochrones of ``uwastro465isos`` ([M/H] nodes -0.5 and 0)
and the CMD 3.3 files of ``shared/data/isochrones/cmd33_parsec12_ubvrijhk`` (8 clusters each),
with the realism of the coverage test (per-star extinction, lower-main-sequence drift on half,
20-45 % binaries, field stars, zero-point errors of 0.015 mag), and fitted with the packaged
grid, the model floor switched off. Per parameter, the floor is the extra 1-sigma error (in
quadrature) that makes the median of |error| / total error 0.674, a Gaussian's, over all
calibration clusters: the median is robust to the few clusters (young, poorly constrained)
whose errors are huge either way, which dominate a mean of squares.

These clusters are the *calibration set*. The coverage test (``tests/test_fitting_coverage.py``)
checks the floor on 12 other clusters (other ages, metallicities, distances, reddenings and
random draws) from the CMD 3.3 files. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tgpcore.fitting import FitSettings, fit_cluster, photometry_from_table  # noqa: E402
from tgpcore.fitting.mock import mock_cluster  # noqa: E402
from tgpcore.isochrones import (  # noqa: E402
    STANDARD_BANDS,
    IsochroneGrid,
    load_grid,
    uwastro_cmd37_path,
)

PARAMS = ("log_age", "dm", "ebv", "mh")
ZP_SIGMA = 0.015
CMD33 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isochrones" / \
    "cmd33_parsec12_ubvrijhk"
#: CMD 3.3 calibration clusters: none of them is a cluster of the coverage test (at CMD 3.3
#: nodes: ages 7.0 ... 10.0 by 0.5; [M/H] -0.44, -0.15, 0.02, 0.15, 0.26).
CASES33 = [
    (7.5, 0.02, 10.2, 0.40, 0.3, 0.0), (8.0, 0.15, 11.6, 0.20, 0.4, 0.05),
    (8.5, -0.44, 9.9, 0.05, 0.25, 0.0), (9.0, -0.15, 10.4, 0.25, 0.35, 0.05),
    (9.5, 0.15, 11.3, 0.15, 0.3, 0.0), (10.0, 0.02, 9.6, 0.04, 0.2, 0.05),
    (8.0, -0.44, 10.7, 0.50, 0.45, 0.0), (9.5, 0.26, 10.9, 0.35, 0.3, 0.05),
]
#: (log age, [M/H], DM, E(B-V), binary fraction, lower-MS drift) at CMD 3.7 nodes.
CASES = [
    (8.0, 0.0, 10.0, 0.30, 0.3, 0.0), (8.3, -0.5, 11.0, 0.15, 0.4, 0.05),
    (8.6, 0.0, 9.6, 0.45, 0.25, 0.05), (8.9, -0.5, 10.8, 0.05, 0.35, 0.0),
    (9.2, 0.0, 11.4, 0.20, 0.3, 0.05), (9.5, -0.5, 10.2, 0.10, 0.2, 0.0),
    (9.8, 0.0, 9.4, 0.06, 0.45, 0.05), (9.1, -0.5, 12.0, 0.35, 0.3, 0.0),
]
SETTINGS = FitSettings(restarts=1, max_steps=800, model_floor=False)
_GRIDS: dict[str, IsochroneGrid] = {}


def _padded(g: IsochroneGrid) -> IsochroneGrid:
    t = g.table.copy()
    for b in STANDARD_BANDS:  # the simulator's population asks for every band
        if b not in t.colnames:
            t[b] = np.full(len(t), np.nan)
    return IsochroneGrid(t, source=g.source)


def _grids() -> dict[str, IsochroneGrid]:
    if not _GRIDS:
        _GRIDS["fit"] = load_grid()
        _GRIDS["cmd37"] = _padded(load_grid(uwastro_cmd37_path()))
        if CMD33.exists():
            _GRIDS["cmd33"] = _padded(load_grid(CMD33))
    return _GRIDS


def fit_case(args: tuple) -> dict:
    release, i, (age, mh, dm, ebv, fb, drift) = args
    grids = _grids()
    grid, sim = grids["fit"], grids[release]
    rng = np.random.default_rng((3700 if release == "cmd37" else 3300) + i)
    zp = {b: float(rng.normal(0.0, ZP_SIGMA)) for b in ("U", "B", "V")}
    mc = mock_cluster(sim, rng, log_age=age, mh=mh, dm=dm, ebv=ebv, n_members=350,
                      binary_fraction=fb, field_fraction=0.05 + 0.07 * (i % 2), gaia=False,
                      extinction="colour", lower_ms_drift=drift, zero_point_offsets=zp)
    data = photometry_from_table(mc.catalog, system="johnson",
                                 zero_points={b: ZP_SIGMA for b in ("U", "B", "V")})
    res = fit_cluster(data, grid, settings=dataclasses.replace(SETTINGS, seed=i))
    return {"release": release, "case": i, "truth": {k: mc.truth[k] for k in PARAMS},
            **{k: {"p50": res.parameters[k].p50, "total": res.parameters[k].total}
               for k in PARAMS}}


#: Median of |z| for a standard normal z.
GAUSS_MEDIAN_ABS = 0.6745


def floor(d: np.ndarray, total: np.ndarray) -> float:
    """sigma with median(|d| / hypot(total, sigma)) = 0.6745 (0 if already below)."""
    f = lambda s: float(np.median(np.abs(d) / np.hypot(total, s))) - GAUSS_MEDIAN_ABS  # noqa: E731
    if f(0.0) <= 0:
        return 0.0
    return float(brentq(f, 0.0, 10.0 * float(np.max(np.abs(d))) + 1e-6))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--release", choices=["cmd37", "cmd33", "both"], default="both")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--rows", help="JSON of earlier rows (--out) to include")
    ap.add_argument("--out", help="write the rows and floors as JSON here")
    args = ap.parse_args(argv)
    grids = _grids()
    jobs = []
    if args.release in ("cmd37", "both"):
        jobs += [("cmd37", i, c) for i, c in enumerate(CASES)]
    if args.release in ("cmd33", "both"):
        if "cmd33" not in grids:
            print(f"CMD 3.3 files absent ({CMD33})", file=sys.stderr)
            return 1
        jobs += [("cmd33", i, c) for i, c in enumerate(CASES33)]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(fit_case, jobs))
    if args.rows:
        rows = json.loads(Path(args.rows).read_text())["rows"] + rows
    print(f"{'release':>7} {'#':>2} " + " ".join(f"{k:>8} {'err':>7} {'total':>6}"
                                               for k in PARAMS))
    for r in rows:
        print(f"{r.get('release', 'cmd37'):>7} {r['case']:2d} " + " ".join(
            f"{r['truth'][k]:8.3f} {r[k]['p50'] - r['truth'][k]:+7.3f} {r[k]['total']:6.3f}"
            for k in PARAMS))
    floors = {}
    for k in PARAMS:
        d = np.array([r[k]["p50"] - r["truth"][k] for r in rows])
        t = np.array([r[k]["total"] for r in rows])
        floors[k] = floor(d, t)
    out = {"measure": "model_systematics", "n_clusters": len(rows),
           "floors": {k: round(v, 4) for k, v in floors.items()},
           "rms_error": {k: round(float(np.sqrt(np.mean(
               [(r[k]["p50"] - r["truth"][k]) ** 2 for r in rows]))), 4) for k in PARAMS}}
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, **out}, indent=1))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
