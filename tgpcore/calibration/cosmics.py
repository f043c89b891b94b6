"""Cosmic-ray detection: L.A.Cosmic (van Dokkum 2001; astroscrappy's algorithm, evaluated only
where it can fire: ``tgpcore.calibration.lacosmic``), then two local clean-ups of its mask that
know what the point-spread function looks like.

1. **Spare star-like detections.** A detection whose unflagged 8-neighbours stand well above
   the local background (more than ``spare_ratio`` of its peak, less where the whole core was
   flagged and the neighbours lie further out on a PSF of ``spare_fwhm_px``, and significantly)
   is the core of a star: a cosmic ray deposits charge in a few pixels and leaves its
   neighbours at the sky.
   Undersampled stars (FWHM ~2 px) and crowded cluster cores are where L.A.Cosmic errs.
2. **Grow along tracks.** Pixels next to a detection that stand more than ``grow_nsig`` sigma
   above the median of their own unflagged neighbours join it (up to ``grow_iter`` steps): the
   faint middle of a long track has a weak Laplacian and L.A.Cosmic misses it. Only pixels
   fainter than the detection's peak join, so growth does not climb into a star's core.

Both steps work in small boxes around each detection.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tgpcore.calibration.lacosmic import detect_cosmics

_K8 = np.ones((3, 3), bool)


def detect_cosmic_rays(data_e: np.ndarray, mask: np.ndarray, read_noise_e: float,
                       sigclip: float = 4.5, sigfrac: float = 0.3, objlim: float = 5.0,
                       niter: int = 2, sigma_e: np.ndarray | None = None,
                       spare_ratio: float = 0.3, grow_nsig: float = 5.0,
                       grow_iter: int = 3, spare_fwhm_px: float = 3.0,
                       spare_bkg_percentile: float = 50.0) -> np.ndarray:
    """Boolean mask of cosmic-ray pixels in an image in electrons (sky included).

    Parameters
    ----------
    data_e : ndarray
        Calibrated image in electrons, sky not subtracted.
    mask : ndarray of bool
        Pixels to ignore (saturated, bad).
    read_noise_e : float
        Read noise in electrons.
    sigclip, sigfrac, objlim, niter
        L.A.Cosmic parameters (astroscrappy's meaning). ``objlim`` protects star cores. The
        image is reflected at its edges (astroscrappy leaves the outer pixels unfiltered and
        misses most hits within a few pixels of them).
    sigma_e : ndarray, optional
        Per-pixel uncertainty (e-) for the track growth; Poisson plus read noise by default.
    spare_ratio : float
        Star test: neighbours' median excess over the peak excess above which a detection is
        a star (0 switches the test off), for neighbours 1 px from the peak.
    spare_fwhm_px : float
        FWHM (px) of the Gaussian that lowers that ratio for neighbours further out (a group
        that covers the whole core). 0.3 and 3 px: on the tiny night, star-core pixels wrongly
        flagged fall from 0.54 % to 0.22 % with the cosmic-ray pixels masked unchanged at 96 %
        (``benchmarks/measure_cosmics.py``).
    spare_bkg_percentile : float
        Percentile of the pixels 4-6 px out that is the star test's background.
    grow_nsig : float
        Track growth threshold in sigma (0 switches growth off).
    grow_iter : int
        Growth steps.

    Returns
    -------
    ndarray of bool
        Cosmic-ray pixels.
    """
    cr = detect_cosmics(np.nan_to_num(data_e).astype(np.float32), np.asarray(mask, dtype=bool),
                        float(read_noise_e), sigclip=sigclip, sigfrac=sigfrac, objlim=objlim,
                        niter=niter)
    if not cr.any():
        return cr
    img = np.nan_to_num(np.asarray(data_e, dtype=np.float64))
    bad = np.asarray(mask, dtype=bool)
    if spare_ratio > 0:
        cr = spare_star_like(img, cr, bad, read_noise_e, spare_ratio, fwhm_px=spare_fwhm_px,
                             bkg_percentile=spare_bkg_percentile)
    if grow_nsig > 0 and grow_iter > 0:
        sigma = sigma_e if sigma_e is not None else np.sqrt(np.clip(img, 0, None)
                                                            + read_noise_e ** 2)
        cr = grow_tracks(img, cr, bad, sigma, grow_nsig, grow_iter)
    return cr


def _boxes(cr: np.ndarray, pad: int):
    """(label, box slices, group mask in the box) for each 8-connected group of ``cr``."""
    lab, _ = ndimage.label(cr, structure=_K8)
    ny, nx = cr.shape
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        y0, y1 = max(sl[0].start - pad, 0), min(sl[0].stop + pad, ny)
        x0, x1 = max(sl[1].start - pad, 0), min(sl[1].stop + pad, nx)
        box = (slice(y0, y1), slice(x0, x1))
        yield box, lab[box] == i


def spare_star_like(data: np.ndarray, cr: np.ndarray, bad: np.ndarray, read_noise_e: float,
                    ratio: float = 0.1, nsig: float = 3.0, fwhm_px: float = 2.0,
                    bkg_percentile: float = 50.0) -> np.ndarray:
    """Unflag detections whose surroundings rise like a star's profile.

    For each group: background = a percentile (``bkg_percentile``) of the pixels at 4-6 px from
    it, peak = its brightest pixel, ring = median of its unflagged 8-neighbours at a mean
    distance d from the peak pixel. A star has ring > ``ratio`` x peak x g(d) (above the
    background), where g(d) = exp(-4 ln 2 (d^2 - 1) / fwhm^2) is how much further down a
    Gaussian of ``fwhm_px`` the ring lies when the whole core was flagged (g = 1 at d = 1), and a
    ring excess above ``nsig`` times the ring median's noise. A cosmic ray leaves its
    neighbours at the sky whatever its size.
    """
    out = cr.copy()
    k = 4.0 * np.log(2.0) / fwhm_px ** 2
    for box, g in _boxes(cr, 6):
        d = data[box]
        other = (cr[box] & ~g) | bad[box]
        near = ndimage.binary_dilation(g, _K8) & ~g & ~other
        far = (ndimage.binary_dilation(g, _K8, iterations=6)
               & ~ndimage.binary_dilation(g, _K8, iterations=3) & ~other)
        if near.sum() < 3 or far.sum() < 8:
            continue
        bkg = float(np.percentile(d[far], bkg_percentile))
        gv = np.where(g, d, -np.inf)
        py, px = np.unravel_index(int(np.argmax(gv)), gv.shape)
        peak = float(d[py, px]) - bkg
        ny_, nx_ = np.nonzero(near)
        dist2 = float(np.mean((ny_ - py) ** 2 + (nx_ - px) ** 2))
        ring = float(np.median(d[near])) - bkg
        noise = 1.25 * np.sqrt(max(bkg, 0.0) + read_noise_e ** 2) / np.sqrt(near.sum())
        expect = ratio * np.exp(-k * max(dist2 - 1.0, 0.0))
        if peak > 0 and ring > expect * peak and ring > nsig * noise:
            out[box][g] = False
    return out


def grow_tracks(data: np.ndarray, cr: np.ndarray, bad: np.ndarray, sigma: np.ndarray,
                nsig: float = 5.0, iters: int = 3) -> np.ndarray:
    """Add the neighbours of detections that stand ``nsig`` sigma above the median of their
    own unflagged 8-neighbours (the faint parts of tracks), ``iters`` steps at most."""
    out = cr.copy()
    for box, g in _boxes(cr, iters + 2):
        d, s, b = data[box], sigma[box], bad[box]
        grown = g.copy()
        for _ in range(iters):
            cand = ndimage.binary_dilation(grown, _K8) & ~grown & ~b & ~out[box]
            if not cand.any():
                break
            nb = _neighbour_median(np.where(grown | out[box] | b, np.nan, d))
            # a track's missed middle is fainter than its detected part; a star core next to a
            # false detection is brighter
            new = cand & (d - nb > nsig * s) & (d < d[g].max())
            if not new.any():
                break
            grown |= new
        out[box] |= grown
    return out


def _neighbour_median(a: np.ndarray) -> np.ndarray:
    """Median of each pixel's finite 8-neighbours (NaN where it has none)."""
    p = np.pad(a, 1, mode="constant", constant_values=np.nan)
    ny, nx = a.shape
    shifts = [p[1 + dy:1 + dy + ny, 1 + dx:1 + dx + nx]
              for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    stack = np.stack(shifts)
    out = np.full(a.shape, np.nan)
    ok = np.isfinite(stack).any(axis=0)
    out[ok] = np.nanmedian(stack[:, ok], axis=0)
    return out
