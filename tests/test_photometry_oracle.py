"""Our vectorised apertures and growth curves against photutils, their oracle.

``aperture_photometry_table`` (all stars at once: exact aperture sums, sigma-clipped annulus
medians) against ``photutils.aperture.ApertureStats``, and ``aperture_fluxes`` at many radii
against ``photutils.profiles.CurveOfGrowth`` (one star per call), on a seeded field of stars
with noise and masked pixels. Tolerances: 1e-9 relative for sums and areas (the same
arithmetic), 1e-6 for the annulus medians (ours reads the annulus in float32), the fluxes to
1e-6 of the sky in the aperture. Ours is kept because it is faster over a whole stage
(benchmarks/IMAGE_STAGES.md).
"""

from __future__ import annotations

import numpy as np
from astropy.stats import SigmaClip
from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture
from photutils.profiles import CurveOfGrowth

from tgpcore.photometry.aperture import aperture_fluxes, aperture_photometry_table


def _field(seed: int = 11):
    rng = np.random.default_rng(seed)
    size, n = 300, 60
    x = rng.uniform(25, size - 25, n)
    y = rng.uniform(25, size - 25, n)
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), 50.0)
    for xi, yi, f in zip(x, y, rng.uniform(1e3, 1e5, n), strict=True):
        r2 = (xx - xi) ** 2 + (yy - yi) ** 2
        img += f * 2.0 / (np.pi * 2.0**2) * (1 + r2 / 2.0**2) ** -3.0
    img += rng.normal(0, 3.0, img.shape)
    err = np.sqrt(np.abs(img) + 9.0)
    mask = np.zeros(img.shape, bool)
    mask[rng.integers(0, size, 300), rng.integers(0, size, 300)] = True
    return img, err, mask, x, y


def test_apertures_match_aperturestats():
    img, err, mask, x, y = _field()
    r_ap, r_in, r_out = 4.0, 10.0, 16.0
    ours = aperture_photometry_table(img, err, mask, x, y, r_ap, r_in, r_out)
    pos = np.column_stack([x, y])
    bkg = ApertureStats(img, CircularAnnulus(pos, r_in, r_out), mask=mask,
                        sigma_clip=SigmaClip(sigma=3.0, maxiters=3)).median
    ap = CircularAperture(pos, r_ap)
    st = ApertureStats(img, ap, error=err, mask=mask, sum_method="exact")
    area = ap.area_overlap(img, mask=mask)
    np.testing.assert_allclose(ours["bkg"], bkg, rtol=1e-6)
    np.testing.assert_allclose(ours["area"], area, rtol=1e-9)
    np.testing.assert_allclose(ours["flux"], np.asarray(st.sum) - bkg * area, rtol=1e-9,
                               atol=1e-6 * float(np.max(bkg * area)))


def test_growth_curves_match_curveofgrowth():
    img, err, mask, x, y = _field()
    radii = np.linspace(1.0, 12.0, 12)
    flux, ferr, _ = aperture_fluxes(img, err, mask, x, y, radii)
    for k in range(len(x)):
        cog = CurveOfGrowth(img, (x[k], y[k]), radii, error=err, mask=mask, method="exact")
        np.testing.assert_allclose(flux[k], cog.profile, rtol=1e-9)
        np.testing.assert_allclose(ferr[k], cog.profile_error, rtol=1e-9)
