"""The fit against the simulator's truth: 12 clusters, and clusters from another isochrone set.

Clusters (``tgpcore.fitting.mock``): the simulator's population (Kroupa IMF, 30 % unresolved
binaries with flat q), 300-1000 members, 5-10 % field stars from the simulator's Galactic
field with calibrated membership weights, CCD errors in U, B, V plus 0.015 mag of scatter
beyond the reported errors, the catalogue cut on the measured V.

Ten clusters are drawn from *EEP-interpolated* isochrones at (log age, [M/H]) between the grid
nodes (the simulator alone would snap them to the nearest node, 0.12 dex / 0.25 dex away, and
the test would never see the fit's interpolation between nodes); two are drawn by the plain
simulator at grid nodes. Interpolation errors against real isochrones are measured by the
inverse-crime clusters, drawn from the CMD 3.7 grid of ``uwastro465isos`` and fitted with the
packaged grid.

Targets (median over clusters): |d log age| <= 0.05, |d DM| <= 0.05, |d E(B-V)| <= 0.02,
|d [M/H]| <= 0.1; no cluster off by more than 0.2 dex in age; the 68 % intervals hold 50-85 %
of the true values (pooled over the four parameters). The fit is lighter here than by default
(12 walkers, chains capped at 300 steps, two optima polished, no systematic budget: these
clusters come from the fitted grid, and the statistical intervals are what is tested) to keep
the test near two minutes on two idle cores. The members' extinction depends on their colour
(``extinction="colour"``), as the fit's model does.
"""

from __future__ import annotations

import dataclasses
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from _fittable import truth_table
from astropy.table import Table

from tgpcore.fitting import FitSettings, fit_cluster, photometry_from_table
from tgpcore.fitting.mock import mock_cluster
from tgpcore.isochrones import (
    STANDARD_BANDS,
    IsochroneGrid,
    IsochroneInterpolator,
    load_grid,
    uwastro_cmd37_path,
)

PARAMS = ("log_age", "mh", "dm", "ebv")
#: (log age, [M/H], DM, E(B-V), members, interpolated?)
CASES = [
    (7.50, 0.00, 9.5, 0.45, 600, True), (7.80, -0.30, 11.0, 0.80, 800, True),
    (8.10, 0.15, 10.2, 0.10, 400, True), (8.40, -0.50, 12.0, 0.30, 1000, True),
    (8.52, -0.20, 9.8, 0.60, 500, False), (8.95, -0.20, 11.5, 0.00, 700, True),
    (9.15, 0.20, 10.8, 0.25, 300, True), (9.30, -0.40, 12.5, 0.05, 900, True),
    (9.48, 0.05, 9.0, 0.70, 600, False), (9.60, -0.10, 11.2, 0.15, 1000, True),
    (9.70, 0.10, 10.0, 0.35, 450, True), (9.80, -0.30, 12.2, 0.50, 800, True),
]
#: Inverse crime: CMD 3.7 nodes ([M/H] 0 and -0.5 are its nodes in the target range).
INVERSE = [(8.00, 0.0, 10.0, 0.30, 700), (8.70, -0.5, 11.0, 0.10, 700),
           (9.30, 0.0, 10.5, 0.50, 700), (9.60, -0.5, 11.5, 0.05, 700)]
TEST_SETTINGS = FitSettings(n_walkers=12, n_steps=100, n_burn=36, n_refine=2,
                            refine_maxfev=300, max_steps=300, systematics=False)
REPORT = Path(os.environ.get("TGP_FIT_REPORT_DIR", "")) if os.environ.get(
    "TGP_FIT_REPORT_DIR") else None

_GRID: IsochroneGrid | None = None


def _grid() -> IsochroneGrid:
    global _GRID
    if _GRID is None:
        _GRID = load_grid()
    return _GRID


def _fit_case(args: tuple) -> dict:
    kind, i, case = args
    grid = _grid()
    if kind == "truth":
        age, mh, dm, ebv, n, interpolated = case
        interp = IsochroneInterpolator(grid) if interpolated else None
        sim_grid = grid
    else:
        age, mh, dm, ebv, n = case
        sim_grid, interp = _cmd37_grid(), None
    mc = mock_cluster(sim_grid, np.random.default_rng(1000 + i), log_age=age, mh=mh, dm=dm,
                      ebv=ebv, n_members=n, field_fraction=0.05 + 0.05 * (i % 2),
                      interpolator=interp, gaia=False, extinction="colour")
    data = photometry_from_table(mc.catalog, system="johnson")
    res = fit_cluster(data, grid, settings=dataclasses.replace(TEST_SETTINGS, seed=i))
    out = {"kind": kind, "case": i, "truth": {k: mc.truth[k] for k in PARAMS},
           "n_stars": data.n_stars, "drawn_from": mc.truth["drawn_from"],
           "seconds": res.diagnostics["seconds"]}
    for k in (*PARAMS, "f_bin", "s_int"):
        p = res.parameters[k]
        out[k] = {"p16": p.p16, "p50": p.p50, "p84": p.p84}
    return out


_CMD37: IsochroneGrid | None = None


def _cmd37_grid() -> IsochroneGrid:
    """The CMD 3.7 grid, with empty Gaia bands (the simulator's population asks for them)."""
    global _CMD37
    if _CMD37 is None:
        g = load_grid(uwastro_cmd37_path())
        t = g.table.copy()
        for b in STANDARD_BANDS:
            if b not in t.colnames:
                t[b] = np.full(len(t), np.nan)
        _CMD37 = IsochroneGrid(t, source=g.source)
    return _CMD37


def _run(jobs: list[tuple]) -> list[dict]:
    _grid()  # load (and cache) before forking
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        return list(pool.map(_fit_case, jobs))


def _table(rows: list[dict]) -> str:
    head = f"{'#':>2} {'N':>5} {'from':<6} " + " ".join(
        f"{k + ' true':>12} {'fit (p16-p84)':>22}" for k in PARAMS) + "  s_fit"

    def lead(r: dict) -> str:
        src = "interp" if r["drawn_from"].startswith("EEP") else "node"
        return f"{r['case']:2d} {r['n_stars']:5d} {src:<6} "

    return truth_table(rows, PARAMS, head, ("p16", "p84"),
                       lambda p, t: f"{t:12.3f} {p['p50']:+9.3f} ({p['p16']:.3f}-{p['p84']:.3f})",
                       lead, lambda r: f" {r['seconds']:5.1f}")


@pytest.mark.slow
def test_recovery_of_twelve_simulated_clusters():
    rows = _run([("truth", i, c) for i, c in enumerate(CASES)])
    d = {k: np.array([r[k]["p50"] - r["truth"][k] for r in rows]) for k in PARAMS}
    inside = {k: np.array([r[k]["p16"] <= r["truth"][k] <= r[k]["p84"] for r in rows])
              for k in PARAMS}
    summary = {k: {"median_abs": float(np.median(np.abs(d[k]))),
                   "max_abs": float(np.max(np.abs(d[k]))),
                   "coverage_68": float(inside[k].mean())} for k in PARAMS}
    pooled = float(np.mean([inside[k].mean() for k in PARAMS]))
    print("\n" + _table(rows))
    print(json.dumps({"summary": summary, "pooled_coverage_68": pooled}, indent=1))
    if REPORT:
        REPORT.mkdir(parents=True, exist_ok=True)
        (REPORT / "recovery.json").write_text(json.dumps({"rows": rows, "summary": summary,
                                                          "pooled": pooled}, indent=1))
    assert summary["log_age"]["median_abs"] <= 0.05
    assert summary["dm"]["median_abs"] <= 0.05
    assert summary["ebv"]["median_abs"] <= 0.02
    assert summary["mh"]["median_abs"] <= 0.1
    assert summary["log_age"]["max_abs"] <= 0.2, "a fit stuck in a wrong age"
    assert 0.5 <= pooled <= 0.85, f"68 % intervals cover {pooled:.0%} of the truths"
    assert all(inside[k].mean() >= 0.25 for k in PARAMS), summary


@pytest.mark.slow
def test_inverse_crime_cmd37_clusters_fitted_with_packaged_grid():
    """Clusters from the CMD 3.7 isochrones, fitted with the packaged grid: the offsets are the
    systematics of changing isochrone sets (reported); sanity bounds only."""
    rows = _run([("inverse", i, c) for i, c in enumerate(INVERSE)])
    d = {k: np.array([r[k]["p50"] - r["truth"][k] for r in rows]) for k in PARAMS}
    print("\n" + _table(rows))
    offsets = {k: {"mean": float(d[k].mean()), "std": float(d[k].std(ddof=1))}
               for k in PARAMS}
    print(json.dumps({"inverse_crime_offsets": offsets}, indent=1))
    if REPORT:
        REPORT.mkdir(parents=True, exist_ok=True)
        (REPORT / "inverse_crime.json").write_text(json.dumps({"rows": rows,
                                                               "offsets": offsets}, indent=1))
    assert np.all(np.abs(d["log_age"]) < 0.2)
    assert np.all(np.abs(d["dm"]) < 0.3)
    assert np.all(np.abs(d["ebv"]) < 0.1)
    assert np.all(np.abs(d["mh"]) < 0.35)


def test_mock_catalogue_is_what_it_says(tmp_path):
    """Members, field fraction, calibrated weights and the U cut of a mock catalogue."""
    grid = _grid()
    mc = mock_cluster(grid, np.random.default_rng(5), log_age=9.0, mh=0.0, dm=10.0, ebv=0.2,
                      n_members=500, field_fraction=0.1, gaia=True)
    cat: Table = mc.catalog
    assert mc.truth["n_members"] == 500 and 30 <= mc.truth["n_field"] <= 80
    assert (mc.truth["log_age"], mc.truth["mh"]) == grid.nearest(9.0, 0.0)
    assert np.all(cat["V"] <= 20.0)
    p = np.asarray(cat["p_member"])
    m = np.asarray(cat["is_member"])
    # calibrated: among stars with p in [0.8, 0.95], the member fraction is ~0.87
    sel = (p > 0.8) & (p < 0.95)
    assert abs(m[sel].mean() - p[sel].mean()) < 0.08
    u_err = np.asarray(cat["U_err"])
    assert np.nanmax(u_err) < 0.2 and np.isnan(u_err).any()
    assert {"phot_g_mean_mag", "phot_bp_mean_mag_error"} <= set(cat.colnames)
    data = photometry_from_table(cat)
    assert data.names == ("V", "B", "U", "G", "BP", "RP")
