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
    x, y = np.asarray(x, float), np.asarray(y, float)
    xo, yo = x.copy(), y.copy()
    n = len(x)
    clean = np.ones(n, bool)
    near_bad = np.zeros(n, bool)  # a masked pixel within 1.5 FWHM at the last iteration
    active = np.ones(n, bool)
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    r2_core = (1.5 * fwhm_px) ** 2
    # all stars at once; each leaves the iteration as the one-star loop would have
    for _ in range(n_iter):
        k = np.flatnonzero(active)
        if len(k) == 0:
            break
        cx, cy = xo[k], yo[k]
        ix, iy = np.rint(cx).astype(np.intp), np.rint(cy).astype(np.intp)
        out = (ix - half < 0) | (iy - half < 0) | (ix + half >= nx) | (iy + half >= ny)
        clean[k[out]] = False
        active[k[out]] = False
        k, cx, cy, ix, iy = k[~out], cx[~out], cy[~out], ix[~out], iy[~out]
        if len(k) == 0:
            break
        gy = iy[:, None, None] + yy[None]
        gx = ix[:, None, None] + xx[None]
        stamp = data[gy, gx]
        sbad = bad[gy, gx]
        dx = gx - cx[:, None, None]
        dy = gy - cy[:, None, None]
        w = np.exp(-0.5 * (dx**2 + dy**2) / sig**2) * ~sbad
        ws = w * stamp
        norm = ws.sum((1, 2))
        near_bad[k] = (sbad & (dx**2 + dy**2 < r2_core)).any((1, 2))
        fail = ~(norm > 0)
        clean[k[fail]] = False
        active[k[fail]] = False
        ok = ~fail
        k, cx, cy, norm = k[ok], cx[ok], cy[ok], norm[ok]
        sx = 2 * (ws[ok] * dx[ok]).sum((1, 2)) / norm
        sy = 2 * (ws[ok] * dy[ok]).sum((1, 2)) / norm
        xo[k], yo[k] = cx + sx, cy + sy
        far = (np.abs(xo[k] - x[k]) > fwhm_px) | (np.abs(yo[k] - y[k]) > fwhm_px)
        clean[k[far]] = False
        active[k[far]] = False
        active[k[~far & (sx * sx + sy * sy < 1e-8)]] = False
    clean &= ~near_bad
    return xo, yo, clean


def estimate_fwhm(data: np.ndarray, mask: np.ndarray | None = None, n_max: int = 40,
                  min_significance: float = 8.0) -> tuple[float | None, int]:
    """Stellar FWHM of an image with no prior guess (for frames far from the expected seeing).

    A scale-space search finds the scale at which each of the most significant compact
    sources responds best to a difference-of-Gaussians filter (each scale's response
    normalised by its own robust noise, so pixel-scale fixed-pattern noise and large-scale
    glow both lose). That scale gives a first guess; photutils ``fit_fwhm`` (a circular
    Gaussian per source) then measures the FWHM, and the median over sources is returned.

    Parameters
    ----------
    data : ndarray
        The image (any linear unit; background need not be removed).
    mask : ndarray of bool, optional
        Pixels to ignore (filled with the median).
    n_max : int
        At most this many sources are used.
    min_significance : float
        Sources must exceed this many sigma of their best-scale filtered noise.

    Returns
    -------
    fwhm_px : float or None
        The FWHM in pixels; None when no source was usable.
    n_used : int
        Sources behind the value.
    """
    from photutils.background import Background2D
    from scipy.ndimage import gaussian_filter, maximum_filter

    data = np.asarray(data, dtype=float)
    bad = ~np.isfinite(data) if mask is None else (np.asarray(mask, bool) | ~np.isfinite(data))
    if bad.all():
        return None, 0
    z = np.where(bad, np.median(data[~bad]), data)
    z = z - np.median(z)
    sigmas = 2.0 ** np.arange(-0.5, 3.76, 0.25)  # 0.7 ... 13.5 px; 2 x sigma is 4 steps on
    z32 = z.astype(np.float32)
    smooth: dict[int, np.ndarray] = {}  # scale index -> smoothed image, dropped once used

    def smoothed(k: int) -> np.ndarray:
        if k not in smooth:
            smooth[k] = gaussian_filter(z32, float(2.0 ** (-0.5 + 0.25 * k)))
        return smooth[k]

    best = np.full(z.shape, -np.inf, np.float32)  # running max of significance over scales
    best_k = np.zeros(z.shape, np.int8)  # ... and the scale index where it is reached
    for k in range(len(sigmas)):
        d = smoothed(k) - smoothed(k + 4)
        del smooth[k]
        m = np.median(d[::3, ::3])
        noise = 1.4826 * np.median(np.abs(d[::3, ::3] - m))
        if not noise > 0:
            continue
        d = (d - m) / noise
        better = d > best
        best[better], best_k[better] = d[better], k
    border = 3 * int(np.ceil(sigmas[-1]))
    peaks = (best == maximum_filter(best, size=11)) & (best > min_significance) & ~bad
    peaks[:border], peaks[-border:], peaks[:, :border], peaks[:, -border:] = (False,) * 4
    ys, xs = np.nonzero(peaks)
    if len(ys) == 0:
        return None, 0
    order = np.argsort(-best[ys, xs])
    ys, xs = ys[order], xs[order]
    scale = sigmas[best_k[ys, xs]]
    keep = scale > sigmas[0]  # single-pixel artefacts respond best at the smallest scale
    if bad.any():  # a masked (saturated, cosmic) pixel near a source spoils its profile
        near = maximum_filter(bad, size=2 * int(np.ceil(3 * np.median(scale))) + 1)
        keep &= ~near[ys, xs]
    ys, xs, scale = ys[keep][:n_max], xs[keep][:n_max], scale[keep][:n_max]
    if len(ys) == 0:
        return None, 0
    # a Gaussian star of width s* responds best to this filter at about 1.25 s*
    guess = float(2.3548 * np.median(scale) / 1.25)
    half = int(np.ceil(1.5 * guess))
    # the Gaussian fit has no background term: remove glow (nebulosity, a cluster's
    # unresolved light) on scales of a few FWHM first
    try:
        box = int(max(16, 4 * guess))
        z = z - Background2D(z, box_size=box, filter_size=3, mask=bad).background
    except ValueError:  # too few unmasked boxes: keep the global level
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fw = _fit_fwhm(z, xs, ys, 2 * half + 1, guess)
        except Exception:  # noqa: BLE001 - a failed fit keeps the scale-space guess
            return guess, len(ys)
    fw = fw[np.isfinite(fw) & (fw > 0.5) & (fw < 4 * guess)]
    if len(fw) == 0:
        return guess, len(ys)
    return float(np.median(fw)), int(len(fw))


def _fit_fwhm(z: np.ndarray, x: np.ndarray, y: np.ndarray, fit_shape: int, guess: float
              ) -> np.ndarray:
    """photutils ``fit_fwhm``'s Gaussian fitted to all stars in one batch
    (:func:`tgpcore.photometry.gaussfit.fit_gaussian_fwhm`); photutils itself when a box
    reaches off the image (it trims such boxes)."""
    from tgpcore.photometry.gaussfit import fit_gaussian_fwhm

    x, y = np.asarray(x, float), np.asarray(y, float)
    x0, y0 = np.ceil(x - fit_shape / 2.0), np.ceil(y - fit_shape / 2.0)
    if ((x0 >= 0) & (y0 >= 0) & (x0 + fit_shape <= z.shape[1])
            & (y0 + fit_shape <= z.shape[0])).all():
        return fit_gaussian_fwhm(z, x, y, fit_shape, guess)
    from photutils.psf import fit_fwhm

    return np.asarray(fit_fwhm(z, xypos=np.column_stack([x, y]), fit_shape=fit_shape,
                               fwhm=guess), float)
