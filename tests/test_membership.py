"""Membership against the simulator's truth: precision/recall, centroid, King radius, no cluster.

Each case is a Gaia-like cone from ``tgpcore.simulate`` (``sample_cluster`` + ``sample_field`` +
``synthesize_gaia``, no images), cut to a 20' radius, with a different cluster/field contrast.
Tolerances: precision and recall >= 0.9 at G < 18 (p > 0.5); proper-motion centroid within
0.05 mas/yr of the simulated one and parallax within 0.01 mas; King core radius within 15 %.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import vstack

from tgpcore.isochrones.grid import load_packaged_grid
from tgpcore.membership import (
    MembershipConfig,
    find_members,
    fit_king,
    king_cumulative,
    write_membership_products,
)
from tgpcore.membership.mixture import fit_mixture, initial_model
from tgpcore.membership.sample import tangent_offsets_arcmin
from tgpcore.plots.membership import membership_figures
from tgpcore.simulate.gaia import synthesize_gaia
from tgpcore.simulate.population import sample_cluster, sample_field
from tgpcore.simulate.region import SkyRegion

RA0, DEC0, R_ARCMIN = 97.5, 24.5, 20.0
FAST = MembershipConfig(n_boot=30, n_boot_king=20)

# seed, systems drawn, field density (stars/arcmin^2 to V = 23), distance (pc), rc, rt ('), pm
CASES = [
    (101, 6000, 6.0, 1500.0, 2.0, 15.0, (-0.9, -2.6)),   # pm on the field's peak
    (102, 5000, 12.0, 1200.0, 2.5, 16.0, (-3.0, 1.5)),
    (103, 6000, 15.0, 2200.0, 1.5, 12.0, (-1.5, -1.0)),  # distant, dense field
    (104, 4000, 9.0, 1000.0, 3.0, 18.0, (2.0, -4.0)),
    (105, 7000, 20.0, 1800.0, 2.0, 14.0, (-0.5, -3.5)),  # densest field
]


@pytest.fixture(scope="module")
def grid():
    return load_packaged_grid()


def simulated_cone(grid, seed, n_systems=3000, field_density=8.0, distance_pc=1500.0, rc=2.0,
                   rt=15.0, pm=(-0.9, -2.6), cluster=True):
    """A simulated Gaia cone and the truth (is_member per row)."""
    rng = np.random.default_rng(seed)
    half = R_ARCMIN / 60.0
    region = SkyRegion("cone", RA0, DEC0, -half, half, -half, half)
    parts = []
    if cluster:
        parts.append(sample_cluster(
            grid, rng, name="SIM", ra=RA0, dec=DEC0, log_age=9.0, mh=0.0,
            distance_pc=distance_pc, ebv=0.2, core_radius_arcmin=rc, tidal_radius_arcmin=rt,
            n_systems=n_systems, binary_fraction=0.3, pmra_masyr=pm[0], pmdec_masyr=pm[1],
            velocity_dispersion_kms=0.8, faint_limit_v=23.0, region=region))
    parts.append(sample_field(grid, rng, region=region, density_arcmin2=field_density,
                              faint_limit_v=23.0, ebv_per_kpc=0.2, ebv_max=0.5,
                              binary_fraction=0.3))
    stars = vstack(parts)
    stars["star_id"] = np.arange(1, len(stars) + 1, dtype=np.int64)
    gaia = synthesize_gaia(stars, rng)
    xi, eta = tangent_offsets_arcmin(RA0, DEC0, gaia["ra"], gaia["dec"])
    gaia = gaia[np.hypot(xi, eta) <= R_ARCMIN]
    truth = np.isin(gaia["source_id"], stars["star_id"][stars["is_member"]])
    return gaia, truth


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[f"seed{c[0]}" for c in CASES])
def test_membership_recovers_truth(grid, case):
    seed, n_sys, dens, dist, rc, rt, pm = case
    gaia, truth = simulated_cone(grid, seed, n_sys, dens, dist, rc, rt, pm)
    res = find_members(gaia, centre=(RA0, DEC0), radius_deg=R_ARCMIN / 60.0, config=FAST)
    assert res.status == "ok", res.message
    p = np.nan_to_num(np.asarray(res.members["p_member"], float))
    bright = np.asarray(res.members["phot_g_mean_mag"], float) < 18.0
    sel = (p > 0.5) & bright
    precision = (sel & truth).sum() / sel.sum()
    recall = (sel & truth).sum() / (truth & bright).sum()
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)
    c = res.summary()["centroid"]
    assert abs(c["pmra_masyr"] - pm[0]) < 0.05
    assert abs(c["pmdec_masyr"] - pm[1]) < 0.05
    assert abs(c["parallax_mas"] - 1000.0 / dist) < 0.01
    assert 0 < c["pmra_err_masyr"] < 0.05 and 0 < c["parallax_err_mas"] < 0.01
    k = res.king
    assert abs(k.rc_arcmin / rc - 1.0) < 0.15, (k.rc_arcmin, rc)
    assert k.rc_err_arcmin > 0 and k.r50_members_err_arcmin > 0


def test_empty_cone_says_no_overdensity(grid):
    gaia, _ = simulated_cone(grid, 15, field_density=10.0, cluster=False)
    res = find_members(gaia, centre=(RA0, DEC0), radius_deg=R_ARCMIN / 60.0, config=FAST)
    assert res.status == "no_cluster"
    assert "no significant overdensity" in res.message
    s = res.summary()
    assert s["centroid"] is None and s["king"] is None
    assert np.nanmax(np.asarray(res.members["p_member"], float)) == 0.0


def test_products_and_figures(grid, tmp_path):
    gaia, _ = simulated_cone(grid, 7, n_systems=2000)
    res = find_members(gaia, centre=(RA0, DEC0), radius_deg=R_ARCMIN / 60.0, config=FAST)
    paths = write_membership_products(res, tmp_path, source="sim")
    from astropy.table import Table

    members = Table.read(paths["members"])
    assert list(members["source_id"]) == list(gaia["source_id"])  # every input star, in order
    assert {"p_member", "p_kinematic", "quality_ok"} <= set(members.colnames)
    summary = json.loads(paths["summary"].read_text())
    for key in ("pmra_masyr", "pmra_err_masyr", "pmdec_err_masyr", "parallax_err_mas", "method"):
        assert key in summary["centroid"]
    assert summary["counts"]["n_members_p50"] >= summary["counts"]["n_members_p90"] > 100
    for key in ("rc_arcmin", "rc_err_arcmin", "rt_arcmin", "rt_err_arcmin",
                "background_per_arcmin2", "r50_members_arcmin", "method"):
        assert key in summary["king"]
    figs = membership_figures(res, tmp_path)
    assert set(figs) == {"sky", "cmd", "proper_motions", "radial_profile"}
    assert all(p.stat().st_size > 10_000 for p in figs.values())


def test_missing_errors_are_estimated_and_said(grid):
    gaia, truth = simulated_cone(grid, 8, n_systems=2000)
    gaia.remove_columns(["pmra_error", "pmdec_error", "parallax_error"])
    res = find_members(gaia, centre=(RA0, DEC0), radius_deg=R_ARCMIN / 60.0, config=FAST)
    assert res.status == "ok" and res.summary()["errors_estimated"] is True
    c = res.summary()["centroid"]
    assert abs(c["pmra_masyr"] + 0.9) < 0.05 and abs(c["pmdec_masyr"] + 2.6) < 0.05


def test_king_cumulative_matches_numeric_integral():
    rc, rt = 1.7, 12.0
    r = np.linspace(0, rt, 200001)
    sigma = (1 / np.sqrt(1 + (r / rc) ** 2) - 1 / np.sqrt(1 + (rt / rc) ** 2)) ** 2
    numeric = np.trapezoid(2 * np.pi * r * sigma, r)
    np.testing.assert_allclose(king_cumulative(rt, rc, rt), numeric, rtol=1e-6)


def test_king_fit_on_pure_king_sample():
    from tgpcore.simulate.king import sample_king_radii

    rng = np.random.default_rng(3)
    r = sample_king_radii(3000, 2.0, 10.0, rng)
    th = rng.uniform(0, 2 * np.pi, r.size)
    bx, by = rng.uniform(-15, 15, (2, 3000))
    keep = np.hypot(bx, by) < 15
    xi = np.concatenate([r * np.cos(th) + 0.5, bx[keep]])
    eta = np.concatenate([r * np.sin(th) - 0.3, by[keep]])
    k = fit_king(xi, eta, 15.0, RA0, DEC0, n_boot=10)
    assert abs(k.rc_arcmin / 2.0 - 1) < 0.1 and abs(k.rt_arcmin / 10.0 - 1) < 0.15
    assert abs(k.xi0_arcmin - 0.5) < 0.15 and abs(k.eta0_arcmin + 0.3) < 0.15
    bg_true = keep.sum() / (np.pi * 15**2)
    assert abs(k.background_per_arcmin2 / bg_true - 1) < 0.15


def test_mixture_deconvolves_heteroscedastic_errors():
    rng = np.random.default_rng(5)
    n_c, n_f = 800, 4000
    truth_c = rng.normal([1.0, -2.0, 0.8], [0.1, 0.1, 0.02], (n_c, 3))
    truth_f = rng.normal([0.0, 0.0, 0.3], [4.0, 4.0, 0.4], (n_f, 3))
    err = rng.uniform(0.02, 0.3, (n_c + n_f, 3)) * np.array([1.0, 1.0, 0.3])
    x = np.vstack([truth_c, truth_f]) + rng.normal(0, 1, (n_c + n_f, 3)) * err
    cov = np.zeros((n_c + n_f, 3, 3))
    for i in range(3):
        cov[:, i, i] = err[:, i] ** 2
    init = initial_model(x, (1.1, -1.9, 0.75), 500, 20.0, 3.0, n_field=2)
    m = fit_mixture(x, cov, np.zeros(len(x)), init, use_position=False)
    np.testing.assert_allclose(m.means[0], [1.0, -2.0, 0.8], atol=0.02)
    np.testing.assert_allclose(np.sqrt(np.diag(m.covs[0])), [0.1, 0.1, 0.02], rtol=0.25)
    assert abs(m.weights[0] - n_c / (n_c + n_f)) < 0.02
