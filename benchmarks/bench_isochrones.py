"""Benchmark of the isochrone library and the cluster fit.

Workload: the packaged PARSEC grid (396 isochrones, 132 839 rows) and a simulated cluster of
1000 stars (U, B, V with CCD errors, 30 % binaries, 8 % field stars with membership weights;
``tgpcore.fitting.mock``).

* ``load``: the grid from its HDF5 cache (checksums recomputed, nothing memoised) against the
  baseline of decoding the gzipped FITS source, on the same file; the two must be identical.
* ``likelihood``: one evaluation with the compiled kernel against the numpy reference kernel on
  the same model and stars; they must agree to 1e-4 in log L.
* ``fit``: the full fit with its error budget (template search, differential evolution,
  trusted range, Nelder-Mead, emcee run to 50 autocorrelation times, the systematic
  re-optimisations) against the baseline of today's fit before issue 22 (the same code with
  those switched off: every star, one extinction coefficient per band, a fixed 180-step chain
  of DE moves, no systematics), on the same catalogue and one core; both are checked against
  the truth. Target: <= 60 s for 1000 stars.

    .venv/bin/python benchmarks/bench_isochrones.py [--stars 1000] [--seed 1]

The last line of the output is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one core for both fits

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _measure import measured  # noqa: E402

warnings.simplefilter("ignore")


def bench_load(cache_dir: Path) -> dict:
    from tgpcore.isochrones import grid as grid_mod
    from tgpcore.isochrones import store

    store.load_grid(cache_dir=cache_dir)  # build the cache entry
    out: dict = {}
    store._sha256_cached.cache_clear()  # noqa: SLF001 - measure a cold process honestly
    with measured(out, "load"):
        cached = store.load_grid(cache_dir=cache_dir)
    grid_mod._read_chronos_table.cache_clear()  # noqa: SLF001
    with measured(out, "load_source"):
        source = grid_mod.load_packaged_grid()
    same = all(np.array_equal(np.asarray(cached.table[c]), np.asarray(source.table[c]),
                              equal_nan=True) for c in source.table.colnames)
    return {"load_s": out["load_s"], "load_source_s": out["load_source_s"],
            "load_identical": bool(same), "cache_hit": bool(cached.table.meta["cache_hit"])}


def bench_likelihood(data, grid) -> dict:
    from tgpcore.fitting import ClusterLikelihood
    from tgpcore.fitting import likelihood as lk
    from tgpcore.fitting.kernel import window_sums_numpy
    from tgpcore.isochrones import IsochroneInterpolator

    like = ClusterLikelihood(data, IsochroneInterpolator(grid, bands=data.bands))
    theta = np.array([9.3, -0.2, 11.0, 0.2, 0.3, 0.02])
    like(theta)  # compile
    reps = 40
    t0 = time.perf_counter()
    for _ in range(reps):
        ours = like(theta)
    t_ours = (time.perf_counter() - t0) / reps
    per_star = like.star_terms(theta)["log_like"]
    original = lk.window_sums
    lk.window_sums = window_sums_numpy
    try:
        t0 = time.perf_counter()
        for _ in range(reps // 4):
            base = like(theta)
        t_base = (time.perf_counter() - t0) / (reps // 4)
        per_star_base = like.star_terms(theta)["log_like"]
    finally:
        lk.window_sums = original
    # the compiled kernel's tabulated exp is accurate to 1e-5 per star
    agree = bool(np.max(np.abs(per_star - per_star_base)) < 1e-5)
    return {"like_ms": 1e3 * t_ours, "like_numpy_ms": 1e3 * t_base,
            "like_speedup": t_base / t_ours, "like_agree": agree,
            "like_abs_diff": float(abs(ours - base))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stars", type=int, default=1000, help="catalogue size (default 1000)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    from tgpcore.fitting import FitSettings, ModelSettings, fit_cluster, photometry_from_table
    from tgpcore.fitting.mock import mock_cluster
    from tgpcore.isochrones import IsochroneInterpolator

    with tempfile.TemporaryDirectory() as tmp:
        load = bench_load(Path(tmp))
        from tgpcore.isochrones import load_grid

        grid = load_grid(cache_dir=tmp)
    truth = {"log_age": 9.3, "mh": -0.2, "dm": 11.0, "ebv": 0.2}
    n_members = int(round(args.stars * 0.92))
    mc = mock_cluster(grid, np.random.default_rng(args.seed), n_members=n_members,
                      field_fraction=0.08, interpolator=IsochroneInterpolator(grid),
                      gaia=False, extinction="colour", **truth)
    data = photometry_from_table(mc.catalog, system="johnson",
                                 zero_points={"U": 0.02, "B": 0.015, "V": 0.015})
    like = bench_likelihood(data, grid)
    baseline_settings = FitSettings(
        trusted_teff_min=None, gaia_colour_g_max=None, systematics=False, max_steps=0,
        adaptive_proposal=False, model=ModelSettings(colour_dependent_extinction=False))
    base: dict = {}
    with measured(base, "base"):
        res_b = fit_cluster(data, grid, settings=baseline_settings)
    fit: dict = {}
    with measured(fit, "fit"):
        res = fit_cluster(data, grid)
    d = {k: res.parameters[k].p50 - truth[k] for k in truth}
    inside = {k: bool(res.parameters[k].total_p16 <= truth[k] <= res.parameters[k].total_p84)
              for k in truth}
    inside_b = {k: bool(res_b.parameters[k].p16 <= truth[k] <= res_b.parameters[k].p84)
                for k in truth}
    rows = [
        ("grid load, HDF5 cache (ours)", f"{load['load_s']:.3f} s"),
        ("grid load, gzipped FITS source (baseline)", f"{load['load_source_s']:.3f} s"),
        ("  same table", str(load["load_identical"])),
        ("likelihood, compiled kernel (ours)", f"{like['like_ms']:.2f} ms"),
        ("likelihood, numpy kernel (baseline)", f"{like['like_numpy_ms']:.2f} ms"),
        ("  |d log L|", f"{like['like_abs_diff']:.2e}"),
        (f"fit with error budget, {data.n_stars} stars (ours)", f"{fit['fit_s']:.1f} s"),
        ("  stars fitted (trusted range)", str(res.data_summary["n_stars"])),
        ("  likelihood calls", str(res.diagnostics["likelihood_calls"])),
        ("  chain steps, converged (> 50 tau)",
         f"{res.diagnostics['chain_steps']}, {res.diagnostics['converged']}"),
        ("  effective posterior samples", f"{res.diagnostics['n_effective']:.0f}"),
        ("today's fit before issue 22 (baseline)", f"{base['base_s']:.1f} s"),
        ("  baseline chain, converged", f"{res_b.diagnostics['chain_steps']}, "
                                        f"{res_b.diagnostics['converged']}"),
        ("  time ratio ours / baseline", f"{fit['fit_s'] / base['base_s']:.2f}"),
    ]
    rows += [(f"  {k}: truth {truth[k]:+.3f}, fit",
              f"{res.parameters[k].p50:+.3f} ±{res.parameters[k].stat:.3f} (stat) "
              f"±{res.parameters[k].sys:.3f} (sys); baseline {res_b.parameters[k].p50:+.3f} "
              f"±{res_b.parameters[k].stat:.3f}") for k in truth]
    width = max(len(r[0]) for r in rows) + 2
    print("isochrone library and cluster fit")
    for name, val in rows:
        print(f"{name:<{width}}{val}")
    out = {"bench": "isochrones", "fit_s": round(fit["fit_s"], 2),
           "baseline_fit_s": round(base["base_s"], 2),
           "fit_ratio": round(fit["fit_s"] / base["base_s"], 2),
           "fit_within_60s": bool(fit["fit_s"] <= 60.0),
           "converged": bool(res.diagnostics["converged"]),
           "baseline_converged": bool(res_b.diagnostics["converged"]),
           "n_fitted": res.data_summary["n_stars"],
           "load_s": round(load["load_s"], 3), "load_source_s": round(load["load_source_s"], 3),
           "load_speedup": round(load["load_source_s"] / load["load_s"], 1),
           "load_identical": load["load_identical"], "like_ms": round(like["like_ms"], 3),
           "like_numpy_ms": round(like["like_numpy_ms"], 3),
           "like_speedup": round(like["like_speedup"], 1), "like_agree": like["like_agree"],
           "n_stars": data.n_stars, "likelihood_calls": res.diagnostics["likelihood_calls"],
           "n_effective": round(res.diagnostics["n_effective"], 1),
           "fit_peak_mb": round(fit["fit_peak_mb"], 1),
           "errors": {k: round(v, 4) for k, v in d.items()},
           "total_errors": {k: round(res.parameters[k].total, 4) for k in truth},
           "truth_in_total_68": inside, "baseline_truth_in_68": inside_b}
    print(json.dumps(out))
    return 0 if load["load_identical"] and like["like_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
