"""Pieces of the plate solver on synthetic data with a known answer: the TAN-SIP fit and its
degree choice, outlier clipping, reference tables with VizieR column names, combined
references, checking a given WCS, profile resolution and the residual figure.

Tolerances: a cubic distortion (0.6" at the corners) is recovered to <= 0.02" RMS over the
image from 200 stars with 0.03" centroid noise, with degree 3 chosen; 14 stars support only a
plain TAN; undistorted stars get no distortion terms (degree 1).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from astropy.wcs import WCS, Sip

from tgpcore.astrometry.catalog import at_epoch, combine_references, read_reference
from tgpcore.astrometry.distortion import fit_plate, supported_degrees
from tgpcore.astrometry.matcher import check_wcs
from tgpcore.instruments import load_profile, resolve_profile
from tgpcore.instruments.profile import ProfileError

SHAPE = (1024, 1024)
SCALE = 0.53


def true_wcs(distorted: bool = True) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"] if distorted else ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [114.6, 21.57]
    w.wcs.crpix = [500.3, 520.1]
    s = SCALE / 3600.0
    w.wcs.cd = np.array([[0.01 * s, -s], [-s, 0.0]])  # rotated 90 deg, as CAFOS
    if distorted:
        a, b = np.zeros((4, 4)), np.zeros((4, 4))
        a[3, 0] = a[1, 2] = b[2, 1] = b[0, 3] = 3e-9  # radial, ~1.1 px at the corners
        a[2, 0] = 2e-7
        w.sip = Sip(a, b, None, None, w.wcs.crpix)
    w.wcs.set()
    return w


def stars(w: WCS, n: int, noise_px: float, seed: int = 1):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1023, (n, 2))
    ra, dec = w.all_pix2world(xy[:, 0], xy[:, 1], 0)
    return xy + rng.normal(0, noise_px, xy.shape), ra, dec


def grid_rms(w1: WCS, w2: WCS) -> float:
    g = np.linspace(0, 1023, 15)
    gx, gy = (a.ravel() for a in np.meshgrid(g, g))
    a, b = np.array(w1.all_pix2world(gx, gy, 0)), np.array(w2.all_pix2world(gx, gy, 0))
    d = np.hypot((a[0] - b[0]) * np.cos(np.radians(a[1])), a[1] - b[1]) * 3600.0
    return float(np.sqrt(np.mean(d**2)))


def test_cubic_distortion_recovered_with_its_degree():
    w = true_wcs()
    xy, ra, dec = stars(w, 200, 0.03 / SCALE)
    fit = fit_plate(xy, ra, dec, SHAPE)
    assert fit.degree == 3, fit.cv_arcsec
    assert grid_rms(fit.wcs, w) <= 0.02
    assert fit.rms_arcsec == pytest.approx(0.03 * np.sqrt(2), rel=0.25)
    # the written header reads back to the same mapping (SIP and its inverse)
    back = WCS(fit.wcs.to_header(relax=True))
    assert grid_rms(back, w) <= 0.02
    x, y = back.all_world2pix(ra, dec, 0)
    assert np.max(np.hypot(x - xy[:, 0], y - xy[:, 1])) < 0.3


def test_few_stars_support_only_a_plain_tan():
    assert supported_degrees(14) == [1]
    assert supported_degrees(25) == [1, 2, 3]
    w = true_wcs()
    xy, ra, dec = stars(w, 14, 0.03 / SCALE)
    assert fit_plate(xy, ra, dec, SHAPE).degree == 1


def test_undistorted_field_gets_no_distortion_terms():
    w = true_wcs(distorted=False)
    xy, ra, dec = stars(w, 300, 0.05 / SCALE, seed=3)
    fit = fit_plate(xy, ra, dec, SHAPE)
    assert fit.degree == 1 and fit.sip_degree is None, fit.cv_arcsec
    assert grid_rms(fit.wcs, w) <= 0.01


def test_outliers_are_clipped_and_do_not_bend_the_fit():
    w = true_wcs()
    xy, ra, dec = stars(w, 150, 0.03 / SCALE)
    xy[:5] += 3.0  # five blends or mismatches, 2.2" off
    fit = fit_plate(xy, ra, dec, SHAPE)
    assert not fit.used[:5].any() and fit.used[5:].mean() > 0.97
    assert grid_rms(fit.wcs, w) <= 0.02


def test_faint_stars_weighted_by_their_own_scatter():
    """Centroid noise growing for faint stars: with fluxes the faint ones are weighted down
    and not clipped wholesale as they would be against the bright stars' scatter."""
    w = true_wcs()
    rng = np.random.default_rng(7)
    xy, ra, dec = stars(w, 240, 0.0)
    flux = np.logspace(4, 1.5, len(xy))
    sigma_px = 0.02 / SCALE * np.sqrt(1e4 / flux) ** 0.5 * 1.5
    xy = xy + rng.normal(0, 1, xy.shape) * sigma_px[:, None]
    with_flux = fit_plate(xy, ra, dec, SHAPE, flux=flux)
    without = fit_plate(xy, ra, dec, SHAPE)
    assert with_flux.used.sum() > without.used.sum()
    assert with_flux.used.mean() > 0.95
    assert grid_rms(with_flux.wcs, w) <= 0.03


def test_vizier_gaia_columns_and_proper_motions(tmp_path):
    p = tmp_path / "members.csv"
    p.write_text("Source,RA_ICRS,DE_ICRS,pmRA,pmDE,Gmag\n"
                 "1,114.6,21.57,-1.2,-1.9,14.1\n2,114.61,21.58,,,15.0\n")
    t = read_reference(p)
    assert {"ra", "dec", "pmra", "pmdec", "phot_g_mean_mag"} <= set(t.colnames)
    ra, dec = at_epoch(t, 2021.24)  # positions at 2016.0 (Gaia EDR3) moved 5.24 yr
    assert (dec[0] - 21.57) * 3.6e6 == pytest.approx(-1.9 * 5.24, abs=0.01)
    assert (ra[0] - 114.6) * 3.6e6 * np.cos(np.radians(21.57)) == pytest.approx(-1.2 * 5.24,
                                                                               abs=0.01)
    assert ra[1] == 114.61 and dec[1] == 21.58  # no proper motion: unmoved
    bad = tmp_path / "nopos.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="nopos.csv"):
        read_reference(bad)


def test_combined_references_prefer_the_first():
    gaia = Table({"ra": [10.0, 10.01], "dec": [5.0, 5.0], "phot_g_mean_mag": [12.0, 13.0],
                  "pmra": [1.0, 2.0], "pmdec": [0.5, 0.5]})
    sdss = Table({"ra": [10.0 + 0.3 / 3600, 10.02], "dec": [5.0, 5.0], "g": [12.5, 16.0]})
    c = combine_references([gaia, sdss])
    assert len(c) == 3 and list(c["source"]) == [0, 0, 1]
    assert c["mag"][0] == 12.0 and c["mag"][2] == 16.0
    assert np.isnan(c["pmra"][2])


def test_check_wcs_confirms_the_right_wcs_and_refuses_a_shifted_one():
    w = true_wcs()
    xy, ra, dec = stars(w, 80, 0.02 / SCALE)
    good = check_wcs(w, xy, ra, dec, SHAPE, SCALE)
    assert good["confirmed"] and good["n_matched"] == 80 and good["rms_arcsec"] < 0.05
    shifted = true_wcs()
    shifted.wcs.crval = [114.6 + 5 / 3600, 21.57]
    shifted.wcs.set()
    assert check_wcs(shifted, xy, ra, dec, SHAPE, SCALE)["confirmed"] is False


def test_profile_given_as_a_file_wins_over_the_recorded_name(tmp_path):
    src = load_profile("caha_cafos").source
    text = open(src).read().replace('name = "caha_cafos"', 'name = "my-cafos"')
    path = tmp_path / "mine.toml"
    path.write_text(text)
    prof = resolve_profile(str(path), "my-cafos")
    assert prof.name == "my-cafos" and prof.detector["pixel_scale_arcsec"] == 0.53
    assert resolve_profile(None, "caha_cafos").name == "caha_cafos"
    assert resolve_profile(None, None).name == "generic"
    with pytest.raises(ProfileError, match="my-cafos.*path of its .toml"):
        resolve_profile(None, "my-cafos")


def test_residual_figure(tmp_path):
    from tgpcore.plots.astrometry import astrometry_figure

    rng = np.random.default_rng(2)
    n = 60
    res = {"x": rng.uniform(0, 1023, n).tolist(), "y": rng.uniform(0, 1023, n).tolist(),
           "dx_px": rng.normal(0, 0.1, n).tolist(), "dy_px": rng.normal(0, 0.1, n).tolist(),
           "used": [True] * (n - 3) + [False] * 3}
    path = astrometry_figure(res, SHAPE, tmp_path / "plots" / "astrometry_x.png", title="x",
                             sip_degree=3, scale_arcsec=SCALE)
    assert path.is_file() and path.stat().st_size > 10_000
