"""Sky geometry of the simulation: tangent-plane offsets and the true WCS of each frame.

Every frame's true WCS is a plain TAN projection with a CD matrix (no distortion)::

    CD = s * [[-cos r, sin r],
              [ sin r, cos r]]       s = pixel scale (deg), r = rotation (deg)

so with r = 0 north is up (+y) and east is left (-x). CRPIX is 1-based (FITS); the pixel grid
is that of the imaging area (the overscan lies to the right, beyond column nx).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from astropy.wcs import WCS

WCS_KEYS: tuple[str, ...] = ("crval1", "crval2", "crpix1", "crpix2",
                             "cd1_1", "cd1_2", "cd2_1", "cd2_2")


def radec_to_tangent(ra0: float, dec0: float, ra, dec) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic offsets (xi east, eta north; degrees) of (ra, dec) about (ra0, dec0)."""
    a0, d0 = np.radians(ra0), np.radians(dec0)
    a, d = np.radians(np.asarray(ra, dtype=float)), np.radians(np.asarray(dec, dtype=float))
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return np.degrees(xi), np.degrees(eta)


def tangent_to_radec(ra0: float, dec0: float, xi_deg, eta_deg) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`radec_to_tangent`: (ra, dec) in degrees, ra in [0, 360)."""
    a0, d0 = np.radians(ra0), np.radians(dec0)
    xi, eta = np.radians(np.asarray(xi_deg, dtype=float)), np.radians(np.asarray(eta_deg,
                                                                                 dtype=float))
    rho = np.hypot(xi, eta)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(rho > 0, eta * np.sin(c) / np.where(rho > 0, rho, 1.0), 0.0)
    d = np.arcsin(np.cos(c) * np.sin(d0) + ratio * np.cos(d0))
    a = a0 + np.arctan2(xi * np.sin(c), rho * np.cos(d0) * np.cos(c) - eta * np.sin(d0) * np.sin(c))
    return np.mod(np.degrees(a), 360.0), np.degrees(d)


def cd_matrix(scale_arcsec: float, rotation_deg: float) -> np.ndarray:
    """The CD matrix (deg/pixel) for a pixel scale and a rotation, east to the left."""
    s = scale_arcsec / 3600.0
    r = np.radians(rotation_deg)
    return s * np.array([[-np.cos(r), np.sin(r)], [np.sin(r), np.cos(r)]])


def wcs_params(crval: tuple[float, float], crpix: tuple[float, float], scale_arcsec: float,
               rotation_deg: float) -> dict[str, float]:
    """The eight numbers of a frame WCS, keyed as in :data:`WCS_KEYS` (crpix 1-based)."""
    cd = cd_matrix(scale_arcsec, rotation_deg)
    return {"crval1": float(crval[0]), "crval2": float(crval[1]),
            "crpix1": float(crpix[0]), "crpix2": float(crpix[1]),
            "cd1_1": float(cd[0, 0]), "cd1_2": float(cd[0, 1]),
            "cd2_1": float(cd[1, 0]), "cd2_2": float(cd[1, 1])}


def truth_wcs(row: Mapping) -> WCS:
    """The true WCS of a frame from its row of ``frames.ecsv`` (or any mapping of WCS_KEYS).

    Parameters
    ----------
    row : mapping
        Anything indexable by ``crval1 crval2 crpix1 crpix2 cd1_1 cd1_2 cd2_1 cd2_2``, e.g. an
        astropy Table row.

    Returns
    -------
    astropy.wcs.WCS
        A TAN WCS of the imaging area (FITS 1-based CRPIX; use ``origin=0`` in
        ``wcs_world2pix`` for numpy 0-based pixel indices).
    """
    vals = {k: float(row[k]) for k in WCS_KEYS}
    if not np.all(np.isfinite(list(vals.values()))):
        raise ValueError("this frame has no sky WCS (a bias, dark or flat)")
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [vals["crval1"], vals["crval2"]]
    w.wcs.crpix = [vals["crpix1"], vals["crpix2"]]
    w.wcs.cd = [[vals["cd1_1"], vals["cd1_2"]], [vals["cd2_1"], vals["cd2_2"]]]
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    w.wcs.set()
    return w
