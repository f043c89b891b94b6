"""Star detection for alignment and plate solving: positions, fluxes, masks respected."""

from __future__ import annotations

import warnings

import numpy as np
from astropy.stats import sigma_clipped_stats
from astropy.table import Table
from photutils.detection import DAOStarFinder


def detect_stars(data: np.ndarray, mask: np.ndarray | None = None, fwhm_px: float = 3.5,
                 nsigma: float = 5.0, max_stars: int = 400, edge_px: int = 8) -> Table:
    """Point sources of an image, brightest first.

    Parameters
    ----------
    data : ndarray
        The image (any linear unit).
    mask : ndarray of bool, optional
        True where a pixel must be ignored (cosmic rays, bad pixels, saturation).
    fwhm_px : float
        Expected FWHM of the stars in pixels.
    nsigma : float
        Detection threshold in units of the background noise.
    max_stars : int
        Keep at most this many (the brightest).
    edge_px : int
        Ignore detections this close to the border.

    Returns
    -------
    astropy.table.Table
        Columns ``x``, ``y`` (0-based pixel, x = column) and ``flux`` (background-subtracted
        sum within the finder's kernel), sorted by decreasing flux; empty when nothing is found.
    """
    data = np.asarray(data, dtype=float)
    bad = ~np.isfinite(data) if mask is None else (np.asarray(mask, bool) | ~np.isfinite(data))
    out = Table(names=("x", "y", "flux"), dtype=(float, float, float))
    if bad.all():
        return out
    step = max(1, int(np.sqrt(data.size / 250_000)))  # a sparse grid is plenty for the noise
    _, med, std = sigma_clipped_stats(data[::step, ::step], mask=bad[::step, ::step], sigma=3.0,
                                      maxiters=5)
    if not np.isfinite(std) or std <= 0:
        return out
    finder = DAOStarFinder(fwhm=fwhm_px, threshold=nsigma * std, exclude_border=True,
                           sharpness_range=(0.2, 1.0), roundness_range=(-0.8, 0.8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = finder(np.where(bad, med, data) - med, mask=bad)
    if found is None or len(found) == 0:
        return out
    x, y = np.asarray(found["x_centroid"], float), np.asarray(found["y_centroid"], float)
    flux = np.asarray(found["flux"], float)
    ny, nx = data.shape
    keep = ((x >= edge_px) & (x < nx - edge_px) & (y >= edge_px) & (y < ny - edge_px)
            & np.isfinite(x) & np.isfinite(y) & np.isfinite(flux))
    order = np.argsort(-flux[keep])[:max_stars]
    x, y, flux = x[keep][order], y[keep][order], flux[keep][order]
    x, y, clean = windowed_centroids(data - med, bad, x, y, fwhm_px)
    return Table({"x": x[clean], "y": y[clean], "flux": flux[clean]})


def windowed_centroids(data: np.ndarray, bad: np.ndarray, x: np.ndarray, y: np.ndarray,
                       fwhm_px: float, n_iter: int = 10) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """Gaussian-windowed centroids (SExtractor's XWIN/YWIN), iterated from (x, y).

    Parameters
    ----------
    data : ndarray
        Background-subtracted image.
    bad : ndarray of bool
        Pixels to ignore.
    x, y : ndarray
        Starting positions (0-based).
    fwhm_px : float
        The window is a Gaussian of this FWHM.

    Returns
    -------
    x, y, clean
        Refined positions and a flag that is False where a masked pixel lies within 1.5 FWHM
        (such a centroid is biased) or the iteration diverged.
    """
    sig = fwhm_px / 2.3548
    half = int(np.ceil(3 * sig)) + 1
    ny, nx = data.shape
    xo, yo = x.astype(float).copy(), y.astype(float).copy()
    clean = np.ones(len(x), bool)
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    for k in range(len(x)):
        cx, cy = xo[k], yo[k]
        for _ in range(n_iter):
            ix, iy = int(round(cx)), int(round(cy))
            if ix - half < 0 or iy - half < 0 or ix + half >= nx or iy + half >= ny:
                clean[k] = False
                break
            stamp = data[iy - half:iy + half + 1, ix - half:ix + half + 1]
            sbad = bad[iy - half:iy + half + 1, ix - half:ix + half + 1]
            dx, dy = xx + ix - cx, yy + iy - cy
            w = np.exp(-0.5 * (dx**2 + dy**2) / sig**2) * ~sbad
            norm = np.sum(w * stamp)
            if norm <= 0:
                clean[k] = False
                break
            sx, sy = 2 * np.sum(w * stamp * dx) / norm, 2 * np.sum(w * stamp * dy) / norm
            cx, cy = cx + sx, cy + sy
            if abs(cx - x[k]) > fwhm_px or abs(cy - y[k]) > fwhm_px:
                clean[k] = False
                break
            if sx * sx + sy * sy < 1e-8:
                break
        if clean[k] and np.any(sbad & (dx**2 + dy**2 < (1.5 * fwhm_px) ** 2)):
            clean[k] = False
        xo[k], yo[k] = cx, cy
    return xo, yo, clean
