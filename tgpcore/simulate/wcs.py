"""Sky geometry of the simulation: tangent-plane offsets and the true WCS of each frame.

Every frame's true WCS is a TAN projection with a CD matrix::

    CD = s * [[-cos r, sin r],
              [ sin r, cos r]]       s = pixel scale (deg), r = rotation (deg)

so with r = 0 north is up (+y) and east is left (-x). CRPIX is 1-based (FITS); the pixel grid
is that of the imaging area (the overscan lies to the right, beyond column nx).

With optical distortion (preset ``distortion_k3``; frames then carry the columns of
:data:`DISTORTION_KEYS`) the camera's pixel offsets ``p`` from the detector centre see the sky
of an ideal camera at ``D(p) = p (1 + c |p|^2)``, ``c = k3 / r_corner^2``. The true WCS is then
TAN-SIP, exactly::

    (xi, eta) = CD @ (D(p) - D(p_ref)),   p_ref = CRPIX - centre

a cubic SIP polynomial in ``(u, v) = pixel - CRPIX`` (with linear terms, since the
distortion's centre is the detector's, not CRPIX, which moves with the dithers).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from astropy.wcs import WCS, Sip

WCS_KEYS: tuple[str, ...] = ("crval1", "crval2", "crpix1", "crpix2",
                             "cd1_1", "cd1_2", "cd2_1", "cd2_2")
#: Frame columns of a distorted camera: k3, the distortion's centre (1-based px) and the
#: radius k3 refers to (px).
DISTORTION_KEYS: tuple[str, ...] = ("distortion_k3", "distortion_x0", "distortion_y0",
                                    "distortion_r_px")


def distortion_params(nx: int, ny: int, k3: float) -> dict[str, float]:
    """The distortion columns of a frame (see :data:`DISTORTION_KEYS`): centred on the
    imaging area, ``k3`` the fractional displacement at its corners."""
    return {"distortion_k3": float(k3), "distortion_x0": (nx + 1) / 2.0,
            "distortion_y0": (ny + 1) / 2.0, "distortion_r_px": float(np.hypot(nx, ny)) / 2.0}


def _poly_mul(a: dict, b: dict) -> dict:
    out: dict = {}
    for (p1, q1), c1 in a.items():
        for (p2, q2), c2 in b.items():
            out[(p1 + p2, q1 + q2)] = out.get((p1 + p2, q1 + q2), 0.0) + c1 * c2
    return out


def radial_sip(crpix: tuple[float, float], centre: tuple[float, float], c: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """SIP A, B (degree 3) of the radial distortion ``D(p) = p (1 + c |p|^2)`` about
    ``centre``, relative to ``crpix`` (both 1-based): ``u + A(u, v) = D_x(p) - D_x(p_ref)``."""
    dx, dy = crpix[0] - centre[0], crpix[1] - centre[1]
    x = {(1, 0): 1.0, (0, 0): dx}
    y = {(0, 1): 1.0, (0, 0): dy}
    r2 = {k: v for k, v in _poly_mul(x, x).items()}
    for k, v in _poly_mul(y, y).items():
        r2[k] = r2.get(k, 0.0) + v
    a, b = np.zeros((4, 4)), np.zeros((4, 4))
    for arr, comp in ((a, _poly_mul(x, r2)), (b, _poly_mul(y, r2))):
        for (p, q), v in comp.items():
            if p + q >= 1:  # the constant is D(p_ref), subtracted
                arr[p, q] = c * v
    return a, b


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
        A TAN WCS of the imaging area (FITS 1-based CRPIX; use ``origin=0`` for numpy 0-based
        pixel indices), TAN-SIP when the frame has distortion columns with k3 != 0 (then use
        ``all_world2pix``/``all_pix2world``, or :func:`world_to_pixel`).
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
    names = row.colnames if hasattr(row, "colnames") else row
    if "distortion_k3" in names and float(row["distortion_k3"]) != 0.0:
        c = float(row["distortion_k3"]) / float(row["distortion_r_px"]) ** 2
        a, b = radial_sip((vals["crpix1"], vals["crpix2"]),
                          (float(row["distortion_x0"]), float(row["distortion_y0"])), c)
        w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
        w.sip = Sip(a, b, None, None, w.wcs.crpix)
    w.wcs.set()
    return w


def world_to_pixel(w: WCS, ra, dec) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixels of (ra, dec) through a truth WCS, its distortion included (the plain
    projection when it has none, bit for bit as before distortion existed)."""
    if w.sip is None:
        return w.wcs_world2pix(ra, dec, 0)
    return w.all_world2pix(ra, dec, 0, tolerance=1e-8, maxiter=50)


def pixel_to_world(w: WCS, x, y) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) of 0-based pixels through a truth WCS, its distortion included."""
    if w.sip is None:
        return w.wcs_pix2world(x, y, 0)
    return w.all_pix2world(x, y, 0)
