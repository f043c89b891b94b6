"""Pieces of an honest fit: colour-dependent extinction, the sampler's convergence, the
parallax prior, member lists joined by position, our catalogue's flags and zero points, the
systematic budget's arithmetic and the comparison of two fits. Fast (seconds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.table import Table
from numpy.testing import assert_allclose

from tgpcore.fitting.compare import compare_fits
from tgpcore.fitting.data import match_members, photometry_from_table
from tgpcore.fitting.parallax import (
    ANGULAR_FLOOR_MAS,
    GLOBAL_ZERO_POINT_MAS,
    GLOBAL_ZERO_POINT_SYS_MAS,
    cluster_parallax_prior,
)
from tgpcore.fitting.ranges import model_anchor_limit
from tgpcore.fitting.sampler import run_emcee
from tgpcore.fitting.synthetic import ModelSettings
from tgpcore.fitting.systematics import Variant, systematic_budget
from tgpcore.isochrones import IsochroneInterpolator, extinction_ratio, load_grid
from tgpcore.isochrones.reddening import ExtinctionModel, gaia_coefficient, r0


@pytest.fixture(scope="module")
def interp():
    return IsochroneInterpolator(load_grid(), bands=("U", "B", "V", "G", "G_BP", "G_RP"))


def test_extinction_depends_on_the_star(interp):
    """E(B-V) keeps its meaning (a hot star's B-V excess at low extinction: the constant
    coefficients); Gaia's coefficients follow Babusiaux et al. (2018) Table 1; cool stars get
    less extinction in G and a smaller E(BP-RP) than hot ones, by the published amounts."""
    m = ExtinctionModel(("U", "B", "V", "G", "G_BP", "G_RP"))
    assert_allclose(m.constant, [extinction_ratio(b) for b in m.bands], rtol=1e-12)
    # a 10 000 K black body at E(B-V) -> 0 reproduces the constant B-V excess exactly
    hot = m.coefficients({"logTe": np.array([4.0]), "G_BP": np.array([0.0]),
                          "G_RP": np.array([0.0])}, 0.0)
    assert hot[0, 1] - hot[0, 2] == pytest.approx(1.0, abs=2e-3)
    # Babusiaux et al. 2018, Eq. 1, at (BP-RP)0 = 1 and A0 -> 0: kG = 0.9761 - 0.1704 + 0.0086
    # + 0.0011 = 0.8154
    assert gaia_coefficient("G", np.array([1.0]), 0.0)[0] / r0() == pytest.approx(0.8154,
                                                                                 abs=1e-4)
    eep = interp.eep_arrays(9.6, 0.0)
    c = m.coefficients(eep, 0.05)
    ms = np.flatnonzero(eep["label"] == 1)
    t = 10.0 ** eep["logTe"][ms]
    i6, i4 = ms[np.argmin(abs(t - 6000))], ms[np.argmin(abs(t - 4000))]
    g, bp, rp = 3, 4, 5
    # A_G/E(B-V): 2.6 at 6000 K, 2.15 at 4000 K (against 2.86 for a hot star)
    assert 2.5 < c[i6, g] < 2.7 and 2.05 < c[i4, g] < 2.25 and m.constant[g] > 2.8
    assert c[i4, bp] - c[i4, rp] < c[i6, bp] - c[i6, rp] < m.constant[bp] - m.constant[rp]
    # the alternative (band-averaged law) agrees with the published relation to 6 % for F-K
    alt = m.alternative().coefficients(eep, 0.05)
    assert np.all(np.abs(alt[[i6, i4], g] / c[[i6, i4], g] - 1) < 0.06)
    # Johnson bands hardly depend on the star (narrow bands)
    assert abs((c[i4, 1] - c[i4, 2]) - (c[i6, 1] - c[i6, 2])) < 0.05


def test_sampler_runs_to_fifty_tau_on_a_correlated_gaussian():
    """A 6-d Gaussian with correlations up to 0.97: the chain stops once longer than 50
    autocorrelation times, well before the cap, and recovers the covariance to 10 %."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T + 0.1 * np.eye(6)
    inv = np.linalg.inv(cov)
    ch = run_emcee(lambda x: -0.5 * x @ inv @ x, np.zeros(6), 3.0 * cov, [(-50, 50)] * 6, 16,
                   180, 60, max_steps=3000, min_sd=np.full(6, 1e-3))
    assert ch.converged and ch.n_steps < 1500
    assert_allclose(np.diag(np.cov(ch.samples.T)) / np.diag(cov), 1.0, atol=0.12)
    # a cap too short is reported, not hidden
    short = run_emcee(lambda x: -0.5 * x @ inv @ x, np.zeros(6), cov, [(-50, 50)] * 6, 16, 90,
                      60, max_steps=120, adapt=False)
    assert not short.converged and short.n_steps == 120


def _members(n=400, plx=0.8, seed=1):
    rng = np.random.default_rng(seed)
    g = rng.uniform(12, 19, n)
    err = 0.02 + 0.3 * 10 ** (0.4 * (g - 20))
    p = rng.uniform(0.6, 1.0, n)
    t = Table({"source_id": np.arange(n) + 10, "ra": 100 + rng.normal(0, 0.05, n),
               "dec": 20 + rng.normal(0, 0.05, n), "parallax": plx + GLOBAL_ZERO_POINT_MAS
               + rng.normal(0, err), "parallax_error": err, "phot_g_mean_mag": g,
               "p_member": p, "ruwe": np.where(rng.random(n) < 0.05, 2.0, 1.0)})
    return t


def test_parallax_prior_from_members():
    """The weighted mean of members, corrected by the global zero point, with the zero point's
    and the angular-covariance floor's errors; RUWE >= 1.4 and p < 0.5 stars left out."""
    t = _members()
    t["p_member"][:20] = 0.1
    t["parallax"][:20] = 5.0       # non-members far off: must not count
    plx, err, notes = cluster_parallax_prior(t)
    cp = cluster_parallax_prior(t)
    assert plx == pytest.approx(0.8, abs=3 * cp.stat_error_mas)
    assert err == pytest.approx(math.sqrt(cp.stat_error_mas**2 + GLOBAL_ZERO_POINT_SYS_MAS**2
                                          + ANGULAR_FLOOR_MAS**2))
    assert any("RUWE" in n for n in notes) and cp.n_stars < 380
    pr = cp.prior()
    assert pr.mu == pytest.approx(10 - 5 * math.log10(plx)) and pr.sigma > 0.04
    # L21 per-star zero points when the columns are there (package gaiadr3-zeropoint)
    pytest.importorskip("zero_point")
    t["nu_eff_used_in_astrometry"] = np.full(len(t), 1.55)
    t["pseudocolour"] = np.full(len(t), np.nan)
    t["ecl_lat"] = np.full(len(t), 30.0)
    t["astrometric_params_solved"] = np.full(len(t), 31)
    cl = cluster_parallax_prior(t)
    assert "Lindegren" in cl.zero_point_method and cl.zero_point_sys_mas < 0.01
    assert -0.06 < cl.zero_point_mas < 0.0
    with pytest.raises(KeyError, match="parallax"):
        cluster_parallax_prior(Table({"ra": [1.0]}))


def test_member_list_joined_by_position_one_to_one():
    """A catalogue without Gaia ids (ours: id, ra, dec) gets the list's probabilities by
    position: nearest within 1 arcsec, one-to-one; the count is reported."""
    rng = np.random.default_rng(3)
    n = 300
    ra, dec = 114.6 + rng.uniform(-0.05, 0.05, n), 21.57 + rng.uniform(-0.05, 0.05, n)
    cat = Table({"id": np.arange(1, n + 1), "ra": ra, "dec": dec})
    sel = rng.choice(n, 120, replace=False)
    off = rng.normal(0, 0.2 / 3600, (2, 120))
    members = Table({"Source": 5_000_000 + sel, "RA_ICRS": ra[sel] + off[0],
                     "DE_ICRS": dec[sel] + off[1], "Pmemb": rng.uniform(0.5, 1.0, 120)})
    # a second entry 0.9" from a matched star (farther than its member) takes nothing
    members.add_row([9_999_999, ra[sel[0]] + 0.9 / 3600 / np.cos(np.radians(dec[sel[0]])),
                     dec[sel[0]], 0.7])
    p, rep = match_members(cat, members)
    assert rep["method"] == "position" and rep["n_matched"] == 120
    assert_allclose(p[sel], members["Pmemb"][:120])
    assert np.count_nonzero(p) == 120 and "120 of 121" in rep["note"]


def test_our_catalogue_flags_and_calibration_zero_points():
    """Saturated/edge measurements are dropped, blended ones get 0.03 mag more error, rows
    without magnitudes are counted, and the calibration's zero-point error becomes the
    nuisance's sigma (and leaves the per-star errors)."""
    t = Table({"id": [1, 2, 3, 4], "ra": [0.0] * 4, "dec": [0.0] * 4,
               "V": [15.0, 16.0, 17.0, np.nan], "V_err": [0.02, 0.02, 0.03, np.nan],
               "V_flags": [0, 4, 1, 0], "B": [15.5, 16.6, 17.8, np.nan],
               "B_err": [0.02, 0.025, 0.04, np.nan], "B_flags": [0, 0, 0, 0]})
    t.meta["calibration"] = {"V": {"zp_err": 0.012}, "B": {"zp_err": 0.015}}
    d = photometry_from_table(t, system="johnson")
    assert d.names == ("V", "B") and d.n_stars == 2            # star 3 saturated in V
    assert d.zero_point_sigma == {"V": 0.012, "B": 0.015}
    v_err = d.errors[:, 0]
    assert v_err[0] == pytest.approx(math.sqrt(0.02**2 - 0.012**2))
    assert v_err[1] == pytest.approx(math.hypot(math.sqrt(0.02**2 - 0.012**2), 0.03))
    assert any("1 rows with no magnitude" in n for n in d.notes)
    assert any("saturated" in n for n in d.notes)
    g = photometry_from_table(Table({"phot_g_mean_mag": [15.0], "bp_rp": [0.9]}), "gaia")
    assert g.zero_point_sigma["BP-RP"] == pytest.approx(math.hypot(0.01, 0.01))


def test_systematic_budget_arithmetic():
    """Subset variants count only their excess over the statistical noise of a smaller
    sample (Barlow 2002); model variants count whole; zero points add in quadrature; the
    isochrone floor adds as a source of its own."""
    data = photometry_from_table(Table({"V": np.arange(10.0, 20.0), "V_err": [0.01] * 10,
                                        "B": np.arange(10.5, 20.5),
                                        "B_err": [0.01] * 10}), "johnson")
    half = data.subset(np.arange(5))
    m = ModelSettings()
    shifts = {"sub": {"dm": 0.05}, "mod": {"dm": 0.02}, "zp1": {"dm": 0.03},
              "zp2": {"dm": 0.04}}
    vs = [Variant("range", "sub", half, m, "subset"), Variant("binary", "mod", data, m, "model"),
          Variant("zero point", "zp1", data, m, "linear"),
          Variant("zero point", "zp2", data, m, "linear")]
    x0 = {"log_age": 9.0, "mh": 0.0, "dm": 10.0, "ebv": 0.1}

    def refit(v):
        x = dict(x0)
        x["dm"] += shifts[v.name]["dm"]
        return x, 0.0

    out = systematic_budget(vs, refit, x0, {"log_age": 0.01, "mh": 0.01, "dm": 0.03,
                                            "ebv": 0.01}, float(np.sum(data.p_member)),
                            floor={"dm": 0.06})
    src = out["sources"]
    # half the stars: chance shift sigma_d^2 = 0.03^2 (10/5 - 1); excess sqrt(0.05^2 - 0.03^2)
    assert src["range"]["sys"]["dm"] == pytest.approx(0.04)
    assert src["binary"]["sys"]["dm"] == pytest.approx(0.02)
    assert src["zero point"]["sys"]["dm"] == pytest.approx(0.05)
    assert src["isochrone models"]["sys"]["dm"] == pytest.approx(0.06)
    assert out["sys"]["dm"] == pytest.approx(math.sqrt(0.04**2 + 0.02**2 + 0.05**2 + 0.06**2))
    assert out["sys"]["log_age"] == 0.0


def test_compare_fits_flags_disagreement():
    a = {k: {"p50": v, "p16": v - 0.01, "p84": v + 0.01, "err_total": e, "fixed": False}
         for k, v, e in (("log_age", 9.3, 0.03), ("dm", 11.9, 0.05), ("ebv", 0.05, 0.02),
                         ("mh", -0.2, 0.05))}
    b = {k: dict(v) for k, v in a.items()}
    b["dm"]["p50"] = 12.1                      # 0.2 / hypot(0.05, 0.05) = 2.8 sigma
    b["ebv"]["p50"] = 0.08                     # 0.03 / 0.028 = 1.1 sigma
    out = compare_fits(a, b, labels=("Johnson", "Gaia"))
    assert out["alarm"] and out["parameters"]["dm"]["alarm"]
    assert out["parameters"]["dm"]["ratio"] == pytest.approx(0.2 / math.hypot(0.05, 0.05))
    assert not out["parameters"]["ebv"]["alarm"] and not out["parameters"]["log_age"]["alarm"]
    assert "ALARM" in out["summary"][1]


def test_trusted_limit_follows_the_isochrone(interp):
    """The faint limit is where the main sequence reaches the Teff floor: fainter for a
    larger distance, brighter for a higher floor."""
    m = ExtinctionModel(("V", "B"))
    design = np.array([[1.0, 0.0], [-1.0, 1.0]])
    lim = model_anchor_limit(interp, ("V", "B"), design, m, np.array([9.6, 0.0, 10.0, 0.1]),
                             5000.0)
    far = model_anchor_limit(interp, ("V", "B"), design, m, np.array([9.6, 0.0, 11.0, 0.1]),
                             5000.0)
    hot = model_anchor_limit(interp, ("V", "B"), design, m, np.array([9.6, 0.0, 10.0, 0.1]),
                             5600.0)
    assert far == pytest.approx(lim + 1.0, abs=1e-9) and hot < lim
    assert 15.5 < lim < 16.8   # M_V ~ 5.7 for a solar-metallicity 5000 K dwarf, + 10 + A_V
