"""Photometric calibration pieces: the weighted fit against injected truth, too few
standards, Landolt's file, the published transformations, application and exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from tgpcore.photcal import (
    TooFewStandardsError,
    calibrate_catalogue,
    export_catalogue,
    fit_calibration,
    read_hdf5_table,
    read_landolt,
    to_johnson,
)

LANDOLT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "landolt" / \
    "nlandolt.dat"


def _standards(rng, n_stars=15, airmasses=(1.1, 1.4, 1.8, 2.3), zp=23.5, k=0.25, c=0.05,
               err=0.005):
    bv = rng.uniform(-0.2, 1.6, n_stars)
    m_std = rng.uniform(10, 15, n_stars)
    rows = [(m, b, X) for X in airmasses for m, b in zip(m_std, bv, strict=True)]
    m, b, X = (np.array(v) for v in zip(*rows, strict=True))
    m_inst = m - (zp - k * X + c * b) + rng.normal(0, err, len(m))
    return m, m_inst, X, b, np.full(len(m), err)


def test_fit_recovers_injected_terms_with_honest_errors():
    """Over 200 simulated nights, ZP, k and c are unbiased (mean within 3 standard errors)
    and their quoted errors match their scatter (ratio 0.8-1.2)."""
    rng = np.random.default_rng(1)
    got = []
    for _ in range(200):
        m, mi, X, b, e = _standards(rng)
        s = fit_calibration("B", m, mi, X, b, e, colour_name="B-V")
        got.append((s.zp - 23.5, s.k - 0.25, s.c - 0.05, s.zp_err, s.k_err, s.c_err))
    g = np.array(got)
    for j in range(3):
        assert abs(g[:, j].mean()) < 3 * g[:, j].std() / np.sqrt(len(g))
        assert 0.8 < g[:, j].std() / g[:, j + 3].mean() < 1.2
    assert np.all(np.abs(g[:, 1]) < 0.01)  # k within 0.01 mag/airmass every night


def test_fit_rejects_outliers_and_reports_covariance():
    rng = np.random.default_rng(2)
    m, mi, X, b, e = _standards(rng)
    mi[[3, 17, 40]] += np.array([0.3, -0.5, 0.2])  # a cosmic ray, a blend, a variable
    s = fit_calibration("V", m, mi, X, b, e, colour_name="B-V")
    assert s.n_rejected == 3
    assert abs(s.k - 0.25) < 0.01 and abs(s.zp - 23.5) < 0.01
    cov = np.asarray(s.cov)
    assert np.allclose(cov, cov.T) and np.all(np.linalg.eigvalsh(cov) > 0)
    assert cov[0, 1] > 0  # ZP and k are correlated (both grow with X)


def test_too_few_standards_fails_clearly():
    rng = np.random.default_rng(3)
    m, mi, X, b, e = _standards(rng, n_stars=1, airmasses=(1.2, 1.9))
    with pytest.raises(TooFewStandardsError, match="U: 2 standard-star measurements"):
        fit_calibration("U", m, mi, X, b, e)


@pytest.mark.realdata
def test_landolt_reader():
    if not LANDOLT.exists():
        pytest.skip(f"{LANDOLT} absent")
    t = read_landolt(LANDOLT)
    assert len(t) == 526
    row = t[t["name"] == "TPHE A"][0]
    assert row["V"] == pytest.approx(14.651)
    assert row["B"] == pytest.approx(14.651 + 0.793)
    assert row["U"] == pytest.approx(14.651 + 0.793 + 0.380)
    assert row["ra"] == pytest.approx((30 / 60 + 9 / 3600) * 15, abs=1e-6)
    assert row["dec"] == pytest.approx(-(46 + 31 / 60 + 22 / 3600), abs=1e-6)


def test_published_transformations():
    sdss = Table({"g": [15.0], "r": [14.5], "g_err": [0.0], "r_err": [0.0]})
    j, desc = to_johnson(sdss, "sdss_jester2005")
    assert j["B"][0] == pytest.approx(15.0 + 0.39 * 0.5 + 0.21)
    assert j["V"][0] == pytest.approx(15.0 - 0.59 * 0.5 - 0.01)
    assert "Jester" in desc
    gaia = Table({"phot_g_mean_mag": [12.0], "bp_rp": [1.0]})
    j, desc = to_johnson(gaia, "gaia_riello2021")
    assert j["V"][0] == pytest.approx(12.0 - (-0.02704 + 0.01424 - 0.2156 + 0.01426))
    assert "Riello" in desc


def test_calibrate_catalogue_inverts_the_system_and_folds_errors(tmp_path):
    """Instrumental magnitudes made from known U, B, V through ZP, k, c come back to those
    magnitudes within 1e-6 mag; errors include the calibration's covariance; a star lacking
    a band keeps the others."""
    from tgpcore.photcal.fit import CalibrationSolution

    rng = np.random.default_rng(4)
    n = 50
    V = rng.uniform(12, 18, n)
    BV = rng.uniform(0, 1.5, n)
    UB = rng.uniform(-0.3, 1.2, n)
    mags = {"V": V, "B": V + BV, "U": V + BV + UB}
    terms = {"U": (22.0, 0.45, 0.08, ("U", "B")), "B": (23.5, 0.25, 0.05, ("B", "V")),
             "V": (23.6, 0.15, -0.03, ("B", "V"))}
    X = {"U": 1.31, "B": 1.22, "V": 1.18}
    inst = Table({"ra": np.zeros(n), "dec": np.zeros(n)})
    sols = {}
    for f, (zp, k, c, (a, b)) in terms.items():
        inst[f"{f}_inst"] = mags[f] - zp + k * X[f] - c * (mags[a] - mags[b])
        inst[f"{f}_inst_err"] = np.full(n, 0.01)
        inst[f"{f}_flags"] = np.zeros(n, int)
        inst[f"{f}_airmass"] = np.full(n, X[f])
        cov = np.diag([0.004, 0.003, 0.002]) ** 2
        sols[f] = CalibrationSolution(f, f"{a}-{b}", zp, k, c, 0.004, 0.003, 0.002,
                                      cov.tolist(), 0.01, 1.0, 30, 0, "test")
    inst["U_inst"] = np.ma.masked_array(inst["U_inst"], mask=np.arange(n) == 0)
    cal = calibrate_catalogue(inst, sols)
    for f in "BV":
        assert np.allclose(np.asarray(cal[f]), mags[f], atol=1e-6)
        e = np.asarray(cal[f"{f}_err"])
        assert np.all(e > 0.01) and np.all(e < 0.02)
    assert cal["U"].mask[0] and not cal["B"].mask[0]
    assert np.allclose(np.asarray(cal["U"])[1:], mags["U"][1:], atol=1e-6)
    paths = export_catalogue(cal, tmp_path, "cl_calibrated", h5_path=tmp_path / "tgp.h5")
    assert Path(paths["fits"]).exists() and Path(paths["ecsv"]).exists()
    back = read_hdf5_table(tmp_path / "tgp.h5", paths["hdf5_key"])
    assert np.allclose(np.asarray(back["V"]), mags["V"], atol=1e-6)
    assert np.isnan(back["U"][0])


def test_frame_common_errors_make_zp_and_k_errors_honest():
    """Each frame's aperture correction is off by a common error (0.4 %, drawn per frame),
    with four frames of 15 standards each. Over 300 nights, the fit that knows the frames
    (generalised least squares) quotes ZP and k errors that match their scatter (ratio
    0.8-1.2); the fit that treats every star as independent quotes errors 2x too small."""
    rng = np.random.default_rng(11)
    gls, ols = [], []
    frames = np.repeat(np.arange(4), 15)
    for _ in range(300):
        m, mi, X, b, e = _standards(rng, err=0.003)
        mi = mi + rng.normal(0, 0.004, 4)[frames]
        s = fit_calibration("B", m, mi, X, b, e, colour_name="B-V", group=frames,
                            group_err=np.full(len(m), 0.004))
        gls.append((s.zp - 23.5, s.k - 0.25, s.zp_err, s.k_err))
        s = fit_calibration("B", m, mi, X, b, e, colour_name="B-V")
        ols.append((s.zp - 23.5, s.k - 0.25, s.zp_err, s.k_err))
    g, o = np.array(gls), np.array(ols)
    for j in range(2):
        assert abs(g[:, j].mean()) < 3 * g[:, j].std() / np.sqrt(len(g))
        assert 0.8 < g[:, j].std() / g[:, j + 2].mean() < 1.2
        assert o[:, j].std() / o[:, j + 2].mean() > 1.6


def test_two_standards_at_many_airmasses_are_too_few():
    """Two stars seen at four airmasses are eight measurements, but too few standards: the
    filter fails with the counts in the reason."""
    from tgpcore.photcal.observe import fit_standards

    rows = [{"name": f"S{i}", "filter": "U", "airmass": X, "m_std": 12.0 + i,
             "m_inst": -10.0 + i + 0.4 * X, "m_inst_err": 0.01, "m_std_err": 0.01,
             "colour": 0.3 * i, "colour_name": "U-B", "frame": f"f{X}"}
            for i in range(2) for X in (1.1, 1.4, 1.8, 2.3)]
    with pytest.raises(TooFewStandardsError,
                       match=r"U: 2 different standard star\(s\) measured \(8 measurements\)"):
        fit_standards(rows, "U")
    rows += [{**rows[0], "name": "S2", "m_std": 14.0, "m_inst": -8.0 + 0.4 * X,
              "colour": 0.9, "airmass": X, "frame": f"f{X}"} for X in (1.1, 1.4, 1.8, 2.3)]
    sol = fit_standards(rows, "U")
    assert abs(sol.k - 0.4) < 1e-6


def test_a_saturated_band_gives_no_colour():
    """A star saturated in V keeps its (lower-limit) V flagged, and its B is calibrated with
    the typical colour, flagged COLOUR_ASSUMED, with the colour spread in its error."""
    from tgpcore.photcal.fit import CalibrationSolution
    from tgpcore.photometry import flags as F

    rng = np.random.default_rng(5)
    n = 40
    V = rng.uniform(12, 17, n)
    BV = rng.uniform(0.2, 1.0, n)
    sols = {f: CalibrationSolution(f, "B-V", 23.0, 0.2, c, 0.001, 0.001, 0.001,
                                   (np.eye(3) * 1e-6).tolist(), 0.01, 1.0, 30, 0, "test")
            for f, c in (("B", 0.1), ("V", -0.05))}
    inst = Table({"ra": np.zeros(n), "dec": np.zeros(n)})
    for f, m in (("B", V + BV), ("V", V)):
        c = sols[f].c
        inst[f"{f}_inst"] = m - 23.0 + 0.2 * 1.2 - c * BV
        inst[f"{f}_inst_err"] = np.full(n, 0.005)
        inst[f"{f}_flags"] = np.zeros(n, int)
        inst[f"{f}_airmass"] = np.full(n, 1.2)
    BV[0] = 1.6  # a red giant ...
    inst["B_inst"][0] = V[0] + 1.6 - 23.0 + 0.2 * 1.2 - 0.1 * 1.6
    inst["V_inst"][0] = V[0] - 23.0 + 0.2 * 1.2 + 0.05 * 1.6 - 0.8  # ... saturated in V
    inst["V_flags"][0] = F.SATURATED
    cal = calibrate_catalogue(inst, sols)
    typical = float(np.median(BV[1:]))
    assert abs(float(cal["B"][0]) - (V[0] + 1.6 + 0.1 * (typical - 1.6))) < 0.01
    assert int(cal["B_flags"][0]) & F.COLOUR_ASSUMED
    assert float(cal["B_err"][0]) > 0.01
    assert np.allclose(np.asarray(cal["B"])[1:], (V + BV)[1:], atol=1e-6)
