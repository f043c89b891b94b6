"""The gnomonic (TAN) projection about a point of the sky, and its inverse.

Standard coordinates (xi east, eta north) of the tangent plane at (ra0, dec0), in degrees:
the FITS ``RA---TAN``/``DEC--TAN`` projection's intermediate world coordinates (Calabretta &
Greisen 2002), which is what astropy's WCS computes for a TAN WCS with ``CRVAL = (ra0, dec0)``
and a unit CD matrix (``tests/test_gnomonic.py`` holds the two to 1e-9 arcsec). The astrometric
fits, the simulator and the membership sample all project through these two functions.

It is not a call to ``astropy.wcs.WCS``: the plate fits project a few hundred stars about a
moving tangent point tens of times per frame, and a WCS object per call costs more than the
projection itself (see ``benchmarks/LIBRARIES.md``).
"""

from __future__ import annotations

import numpy as np


def to_tangent(ra0: float, dec0: float, ra, dec) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic standard coordinates (xi east, eta north; degrees) of (ra, dec) about
    (ra0, dec0), all in degrees."""
    a0, d0 = np.radians(ra0), np.radians(dec0)
    a, d = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    cos_da = np.cos(a - a0)
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * cos_da
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * cos_da) / cosc
    return np.degrees(xi), np.degrees(eta)


def from_tangent(ra0: float, dec0: float, xi, eta) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`to_tangent`: (ra, dec) in degrees, ra in [0, 360)."""
    a0, d0 = np.radians(ra0), np.radians(dec0)
    x, y = np.radians(np.asarray(xi, float)), np.radians(np.asarray(eta, float))
    den = np.cos(d0) - y * np.sin(d0)
    a = a0 + np.arctan2(x, den)
    d = np.arctan2(np.sin(d0) + y * np.cos(d0), np.hypot(x, den))
    return np.mod(np.degrees(a), 360.0), np.degrees(d)
