"""Star detection (DAOStarFinder on the signal-to-noise image) and the FWHM of a stack."""

from __future__ import annotations

import warnings

import numpy as np
from astropy.table import Table


def detect_stars(data_sub: np.ndarray, rms: np.ndarray, fwhm_px: float, nsigma: float = 4.0,
                 mask: np.ndarray | None = None, border_px: int | None = None,
                 sharplo: float = 0.2, sharphi: float = 1.0, roundlo: float = -1.0,
                 roundhi: float = 1.0, min_separation_fwhm: float = 1.2) -> Table:
    """Detect point sources with photutils ``DAOStarFinder``.

    The search runs on ``data_sub / rms`` so that a spatially varying noise (vignetting,
    exposure map) gives one threshold in units of the local noise.

    Parameters
    ----------
    data_sub : ndarray
        Background-subtracted image.
    rms : ndarray or float
        Background noise (same units).
    fwhm_px : float
        FWHM of the detection kernel (pixels).
    nsigma : float
        Threshold on the kernel-filtered peak, in units of the local noise.
    mask : ndarray of bool, optional
        Pixels to ignore.
    border_px : int, optional
        Ignore sources closer than this to the edge (default: ~1 FWHM).
    sharplo, sharphi, roundlo, roundhi : float
        DAOFIND shape limits (cosmic rays and hot pixels are sharper than stars).
    min_separation_fwhm : float
        Closest two detections may be (FWHM); photutils' default (2.5 FWHM) would merge the
        blends of a crowded core.

    Returns
    -------
    astropy.table.Table
        ``x``, ``y`` (0-based pixels), ``peak_snr``, ``sharpness``, ``roundness1``,
        ``roundness2``; sorted by decreasing peak. Empty (with those columns) when nothing is
        found.
    """
    from photutils.detection import DAOStarFinder

    rms = np.broadcast_to(np.asarray(rms, float), data_sub.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(rms > 0, data_sub / rms, 0.0)
    bad = ~np.isfinite(snr)
    if mask is not None:
        bad |= np.asarray(mask, bool)
    if mask is not None and np.asarray(mask).any():
        # Small masked areas (saturated cores) are filled with the largest neighbouring value
        # so that their stars are still found (as plateaus); big holes stay masked.
        from scipy import ndimage

        filled = np.where(bad, -np.inf, snr)
        for _ in range(3):
            grown = ndimage.grey_dilation(filled, size=3)
            filled = np.where(np.isneginf(filled), grown, filled)
        fill_ok = bad & np.isfinite(filled)
        snr = np.where(fill_ok, filled, snr)
        bad = bad & ~fill_ok
    snr[bad] = 0.0
    finder = DAOStarFinder(threshold=nsigma, fwhm=fwhm_px, sharpness_range=(sharplo, sharphi),
                           roundness_range=(roundlo, roundhi), exclude_border=False,
                           min_separation=max(2.0, min_separation_fwhm * fwhm_px))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = finder(snr, mask=bad)
    cols = ("x", "y", "peak_snr", "sharpness", "roundness1", "roundness2")
    if found is None or len(found) == 0:
        return Table({c: np.zeros(0) for c in cols})
    out = Table({"x": np.asarray(found["x_centroid"], float),
                 "y": np.asarray(found["y_centroid"], float),
                 "peak_snr": np.asarray(found["peak"], float),
                 "sharpness": np.asarray(found["sharpness"], float),
                 "roundness1": np.asarray(found["roundness1"], float),
                 "roundness2": np.asarray(found["roundness2"], float)})
    b = int(round(fwhm_px)) if border_px is None else int(border_px)
    ny, nx = data_sub.shape
    keep = (out["x"] >= b) & (out["x"] <= nx - 1 - b) & (out["y"] >= b) & (out["y"] <= ny - 1 - b)
    out = out[keep]
    out.sort("peak_snr", reverse=True)
    # A filled saturated core is a plateau of equal values, where DAOStarFinder returns
    # several peaks closer than min_separation: keep the first (brightest) of each.
    sep = max(2.0, min_separation_fwhm * fwhm_px)
    if len(out) > 1:
        from scipy.spatial import cKDTree

        pairs = cKDTree(np.column_stack([out["x"], out["y"]])).query_pairs(
            sep, output_type="ndarray")
        if len(pairs):
            drop = np.zeros(len(out), bool)
            for i, j in pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]:
                if not drop[i]:
                    drop[j] = True
            out = out[~drop]
    return out


def nearest_neighbour_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distance from each point to its nearest other point (inf when alone)."""
    from scipy.spatial import cKDTree

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2:
        return np.full(len(x), np.inf)
    d, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
    return d[:, 1]


def measure_fwhm(data_sub: np.ndarray, stars: Table, guess_px: float,
                 mask: np.ndarray | None = None, n_max: int = 60,
                 isolation_px: float | None = None) -> tuple[float, int]:
    """FWHM of the stack from bright, isolated stars (a circular pixel-integrated Gaussian
    fitted to each star, all stars in one batch: :func:`~tgpcore.photometry.gaussfit.
    fit_gaussian_fwhm`, photutils ``fit_fwhm``'s model; the median over stars).

    Parameters
    ----------
    data_sub : ndarray
        Background-subtracted image.
    stars : Table
        Detections (``x``, ``y``, ``peak_snr``), brightest first.
    guess_px : float
        The expected FWHM (sets the fitting box and the isolation radius).
    mask : ndarray of bool, optional
        Stars with masked pixels in the box are skipped.
    n_max : int
        At most this many stars are fitted.
    isolation_px : float, optional
        Neighbour-free radius (default 4 x ``guess_px``).

    Returns
    -------
    fwhm_px : float
        The median FWHM, or ``guess_px`` when no star could be fitted.
    n_used : int
        Stars behind the value.
    """
    from tgpcore.photometry.gaussfit import fit_gaussian_fwhm

    if len(stars) == 0:
        return float(guess_px), 0
    half = int(np.ceil(1.5 * guess_px))
    iso = 4.0 * guess_px if isolation_px is None else isolation_px
    nn = nearest_neighbour_px(stars["x"], stars["y"])
    ny, nx = data_sub.shape
    x = np.asarray(stars["x"], float)
    y = np.asarray(stars["y"], float)
    ok = (nn > iso) & (x > half + 1) & (x < nx - half - 2) & (y > half + 1) & (y < ny - half - 2)
    ok &= np.asarray(stars["peak_snr"], float) > 20
    if mask is not None and ok.any():
        k = np.flatnonzero(ok)
        ix, iy = np.rint(x[k]).astype(int), np.rint(y[k]).astype(int)
        off = np.arange(-half, half + 1)
        box = np.asarray(mask, bool)[iy[:, None, None] + off[None, :, None],
                                     ix[:, None, None] + off[None, None, :]]
        ok[k[box.any((1, 2))]] = False
    idx = np.flatnonzero(ok)[:n_max]
    if len(idx) == 0:
        return float(guess_px), 0
    shape = 2 * half + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fw = fit_gaussian_fwhm(data_sub, x[idx], y[idx], shape, guess_px)
        except Exception:  # noqa: BLE001 - a failed fit keeps the guess
            return float(guess_px), 0
    fw = fw[np.isfinite(fw) & (fw > 0.5) & (fw < 5 * guess_px)]
    if len(fw) == 0:
        return float(guess_px), 0
    return float(np.median(fw)), int(len(fw))


def refine_centroids(data_sub: np.ndarray, x: np.ndarray, y: np.ndarray, fwhm_px: float,
                     mask: np.ndarray | None = None, iters: int = 4, max_shift_px: float = 1.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-windowed centroids (SExtractor's XWIN/YWIN), all stars at once.

    Parameters
    ----------
    data_sub : ndarray
        Background-subtracted image.
    x, y : array
        Starting positions (0-based).
    fwhm_px : float
        Sets the window (sigma = FWHM / 2.355) and the stamp size.
    mask : ndarray of bool, optional
        Masked pixels get no weight.
    iters : int
        Iterations.
    max_shift_px : float
        A star whose centroid would move further than this keeps its starting position.

    Returns
    -------
    x, y : ndarray
        Refined positions.
    """
    x0, y0 = np.asarray(x, float), np.asarray(y, float)
    if len(x0) == 0:
        return x0.copy(), y0.copy()
    ny, nx = data_sub.shape
    sig = fwhm_px / 2.3548
    R = int(np.ceil(3.0 * sig)) + 1
    off = np.arange(-R, R + 1)
    oy, ox = np.meshgrid(off, off, indexing="ij")
    oy, ox = oy.ravel(), ox.ravel()
    xc, yc = x0.copy(), y0.copy()
    ix = np.clip(np.rint(x0).astype(int)[:, None] + ox[None, :], 0, nx - 1)
    iy = np.clip(np.rint(y0).astype(int)[:, None] + oy[None, :], 0, ny - 1)
    v = data_sub[iy, ix]
    if mask is not None:
        v = np.where(mask[iy, ix], 0.0, v)
    for _ in range(iters):
        dx = ix - xc[:, None]
        dy = iy - yc[:, None]
        w = np.exp(-(dx**2 + dy**2) / (2 * sig**2)) * v
        sw = w.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            sx = 2.0 * (w * dx).sum(1) / sw
            sy = 2.0 * (w * dy).sum(1) / sw
        ok = np.isfinite(sx) & np.isfinite(sy) & (sw > 0)
        xc = np.where(ok, xc + sx, xc)
        yc = np.where(ok, yc + sy, yc)
    far = (np.hypot(xc - x0, yc - y0) > max_shift_px) | ~np.isfinite(xc) | ~np.isfinite(yc)
    xc[far], yc[far] = x0[far], y0[far]
    return xc, yc
