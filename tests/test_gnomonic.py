"""tgpcore.gnomonic against astropy's WCS (WCSLIB's TAN projection) as the oracle."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS

from tgpcore.gnomonic import from_tangent, to_tangent

#: Agreement with WCSLIB: 1e-9 arcsec (both are double-precision evaluations of one formula).
TOL_DEG = 1e-9 / 3600.0


def tan_wcs(ra0: float, dec0: float) -> WCS:
    """A TAN WCS whose 'pixels' are the standard coordinates in degrees (unit CD matrix)."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = [1.0, 1.0]                  # pixel 0 (0-based) is the tangent point
    w.wcs.cd = np.eye(2)
    return w


@pytest.mark.parametrize("ra0, dec0", [(97.5, 24.5), (0.2, -5.0), (359.9, 62.0),
                                       (180.0, -89.0), (114.6, 21.57)])
def test_same_as_astropy_wcs_tan(ra0, dec0):
    """Stars over a 2-degree field (a cluster's Gaia cone, a mosaic), across RA = 0 and near
    a pole: forward and inverse agree with astropy to 1e-9 arcsec."""
    rng = np.random.default_rng(7)
    xi = rng.uniform(-1.0, 1.0, 5000)
    eta = rng.uniform(-1.0, 1.0, 5000)
    w = tan_wcs(ra0, dec0)
    ra_ref, dec_ref = w.wcs_pix2world(xi, eta, 0)
    ra, dec = from_tangent(ra0, dec0, xi, eta)
    dra = (ra - ra_ref + 180.0) % 360.0 - 180.0
    assert np.max(np.abs(dra * np.cos(np.radians(dec_ref)))) < TOL_DEG
    assert np.max(np.abs(dec - dec_ref)) < TOL_DEG
    x_ref, y_ref = w.wcs_world2pix(ra_ref, dec_ref, 0)
    x, y = to_tangent(ra0, dec0, ra_ref, dec_ref)
    assert np.max(np.abs(x - x_ref)) < TOL_DEG
    assert np.max(np.abs(y - y_ref)) < TOL_DEG
    assert np.all((ra >= 0) & (ra < 360))


def test_east_and_north():
    """xi grows to the east (increasing RA) and eta to the north; the centre maps to 0."""
    x, y = to_tangent(10.0, 20.0, [10.0, 10.1, 10.0], [20.0, 20.0, 20.1])
    np.testing.assert_allclose([x[0], y[0]], 0.0, atol=1e-15)
    assert x[1] > 0 and abs(y[1]) < 1e-3
    assert y[2] > 0 and abs(x[2]) < 1e-12
