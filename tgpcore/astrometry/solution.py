"""A plate solution, its quality, and moving it between a stack and its frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import fit_wcs_from_points, proj_plane_pixel_scales


@dataclass
class Solution:
    """The outcome of one solver: a WCS (0-based pixel convention of astropy) and its quality.

    ``rms_arcsec`` is the RMS sky distance between matched reference stars and the detections
    mapped through ``wcs`` (the ``n_matched`` stars the fit kept; ``n_rejected`` more were
    matched but clipped as outliers). ``sip_degree`` is the distortion degree (None: plain
    TAN or unknown), ``cv_arcsec`` the leave-one-out RMS of each degree tried, and
    ``residuals`` the per-star residuals (lists ``x``, ``y``, ``east_arcsec``,
    ``north_arcsec``, ``used``) when the solver measured them.
    """

    ok: bool
    solver: str
    wcs: WCS | None = None
    n_matched: int = 0
    rms_arcsec: float | None = None
    seconds: float = 0.0
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    sip_degree: int | None = None
    n_rejected: int = 0
    residuals: dict[str, list] | None = None
    cv_arcsec: dict[int, float] | None = None

    @classmethod
    def failed(cls, solver: str, reason: str) -> Solution:
        """A failed attempt with its reason."""
        return cls(ok=False, solver=solver, reason=reason)

    def summary(self) -> dict[str, Any]:
        """Plain data without the WCS object and residuals (centre and scale instead)."""
        out: dict[str, Any] = {"ok": self.ok, "solver": self.solver,
                               "n_matched": self.n_matched, "rms_arcsec": self.rms_arcsec,
                               "sip_degree": self.sip_degree, "n_rejected": self.n_rejected,
                               "seconds": round(self.seconds, 3), "reason": self.reason,
                               "notes": list(self.notes)}
        if self.cv_arcsec:
            out["cv_arcsec"] = {str(k): v for k, v in self.cv_arcsec.items()}
        if self.wcs is not None:
            scales = proj_plane_pixel_scales(self.wcs.celestial) * 3600.0
            out.update({"pixel_scale_arcsec": float(np.mean(scales)),
                        "crval": [float(v) for v in self.wcs.wcs.crval]})
        return out


def wcs_rms_arcsec(wcs: WCS, xy: np.ndarray, sky: SkyCoord) -> float:
    """RMS separation (arcsec) between ``sky`` and the pixels ``xy`` (0-based) through ``wcs``."""
    ra, dec = wcs.all_pix2world(xy[:, 0], xy[:, 1], 0)
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(sky).arcsec
    return float(np.sqrt(np.mean(sep**2)))


def header_wcs(header: fits.Header, scale_arcsec: float | None = None,
               scale_tolerance: float = 0.1) -> WCS | None:
    """A valid celestial WCS in a header, or None.

    Valid means: celestial axes (e.g. ``RA---TAN``/``DEC--TAN``), finite reference values and a
    non-singular pixel matrix whose scale agrees with ``scale_arcsec`` (when given) within
    ``scale_tolerance``.
    """
    ctype = str(header.get("CTYPE1", "")).upper()
    if not (ctype.startswith("RA") or ctype.startswith("GLON") or ctype.startswith("ELON")):
        return None
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = WCS(header, naxis=2)
    except Exception:  # noqa: BLE001 - any unreadable WCS is no WCS
        return None
    if not w.has_celestial or not np.all(np.isfinite(w.wcs.crval)):
        return None
    m = w.pixel_scale_matrix
    if not np.all(np.isfinite(m)) or abs(np.linalg.det(m)) < 1e-20:
        return None
    if scale_arcsec:
        s = float(np.sqrt(abs(np.linalg.det(m)))) * 3600.0
        if abs(s / scale_arcsec - 1.0) > scale_tolerance:
            return None
    return w


def carry_wcs(wcs: WCS, matrix: np.ndarray, shape: tuple[int, int], n_grid: int = 12) -> WCS:
    """The WCS of a frame from the WCS of the stack it was aligned onto.

    Parameters
    ----------
    wcs : WCS
        The stack's (reference grid's) WCS.
    matrix : ndarray (3, 3)
        Frame pixel -> reference pixel (0-based), as recorded by the alignment.
    shape : (ny, nx)
        The frame's shape.
    n_grid : int
        Points per axis of the grid the frame's WCS is fitted on.

    Returns
    -------
    WCS
        TAN (with SIP of the same degree when the stack's WCS has SIP).
    """
    ny, nx = shape
    gx, gy = np.meshgrid(np.linspace(0, nx - 1, n_grid), np.linspace(0, ny - 1, n_grid))
    g = np.column_stack([gx.ravel(), gy.ravel()])
    m = np.asarray(matrix, float)
    r = g @ m[:2, :2].T + m[:2, 2]
    ra, dec = wcs.all_pix2world(r[:, 0], r[:, 1], 0)
    sip = wcs.sip.a_order if wcs.sip is not None else None
    return fit_wcs_from_points((g[:, 0], g[:, 1]), SkyCoord(ra * u.deg, dec * u.deg),
                               proj_point="center", projection="TAN", sip_degree=sip)


def wcs_header(wcs: WCS) -> fits.Header:
    """FITS cards of a WCS (SIP included when present)."""
    return wcs.to_header(relax=True)
