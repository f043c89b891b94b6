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

Both steps treat all detections at once, on flat pixel indices.
"""

from __future__ import annotations

import warnings

import numpy as np

from tgpcore.calibration.lacosmic import detect_cosmics
from tgpcore.calibration.morphology import label_pixels


def detect_cosmic_rays(data_e: np.ndarray, mask: np.ndarray, read_noise_e: float,
                       sigclip: float = 4.5, sigfrac: float = 0.3, objlim: float = 5.0,
                       niter: int = 2, sigma_e: np.ndarray | None = None,
                       var_e: np.ndarray | None = None, spare_ratio: float = 0.3,
                       grow_nsig: float = 5.0, grow_iter: int = 3, spare_fwhm_px: float = 3.0,
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
    sigma_e, var_e : ndarray, optional
        Per-pixel uncertainty (e-) or variance (e-^2; preferred when both are at hand: it is
        the noise model itself): L.A.Cosmic's noise model and the track growth's; Poisson
        plus read noise by default. A calibrated frame's uncertainty also holds the masters'
        noise and the flat's division; with only Poisson and read noise, L.A.Cosmic took the
        noise peaks of low-sky frames for hits (on the tiny night 0.11 % of sky pixels, and
        most of the star-core pixels wrongly flagged, were such; with it, 0.003 %). Where the
        frame's Laplacian is measurably noisier than this variance predicts (correlated read
        noise: :func:`laplacian_noise_factor`), L.A.Cosmic's model is scaled up to match.
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
    img = np.asarray(data_e, dtype=np.float32)  # read only: no copy of a calibrated frame
    if not np.isfinite(img).all():
        img = np.nan_to_num(img)                  # a copy: the caller's array is left alone
    bad = np.asarray(mask, dtype=bool)
    if var_e is None and sigma_e is not None:
        var_e = np.square(sigma_e, dtype=np.float32)
    var = None if var_e is None else np.asarray(var_e, dtype=np.float32)
    noise_var = var
    if var is not None and not np.isfinite(var).all():
        noise_var = np.nan_to_num(var, nan=0.0, posinf=0.0)
    if noise_var is not None:
        factor = laplacian_noise_factor(img, bad, noise_var)
        if factor > LAPLACIAN_TOLERANCE:
            noise_var = noise_var * np.float32(factor ** 2)
    cr = np.ascontiguousarray(detect_cosmics(img, bad, float(read_noise_e), sigclip=sigclip,
                                             sigfrac=sigfrac, objlim=objlim, niter=niter,
                                             var=noise_var))
    idx = np.flatnonzero(cr)
    if not len(idx):
        return cr
    lab, n = label_pixels(idx, cr.shape)
    if spare_ratio > 0:
        keep = spare_star_like(img, cr, bad, idx, lab, n, read_noise_e, spare_ratio,
                               fwhm_px=spare_fwhm_px, bkg_percentile=spare_bkg_percentile)
        cr.ravel()[idx[~keep]] = False
        idx, lab = idx[keep], lab[keep]
    if grow_nsig > 0 and grow_iter > 0 and len(idx):
        if var is None:
            var = np.clip(img, 0, None) + read_noise_e ** 2
        cr = grow_tracks(img, cr, bad, var, idx, lab, n, grow_nsig, grow_iter)
    return cr


#: L.A.Cosmic's noise model is scaled up when the frame's measured Laplacian noise exceeds it
#: by more than this factor (white noise: 1.00 +- 0.01 on a 256^2 frame).
LAPLACIAN_TOLERANCE = 1.02


def laplacian_noise_factor(img: np.ndarray, bad: np.ndarray, var: np.ndarray,
                           step: int = 1) -> float:
    """How much noisier the frame's Laplacian is than its variance map predicts.

    L.A.Cosmic tests a Laplacian against the per-pixel noise, which assumes the noise of
    neighbouring pixels independent. Read noise with electronic pickup along the rows is not
    (the CAFOS biases: correlation -0.31 at one pixel, +0.60 at three): the Laplacian, a
    high-pass filter, amplifies it, and the peaks of the pickup pass for cosmic rays, in
    short exposures (read-noise dominated) more than in long ones. This returns the robust
    scatter of L = 2v - (n + s + w + e) / 2 over sqrt(5 var) (its variance for independent
    pixels) at the unmasked pixels: 1 for white noise, more for such pickup (1.13-1.22 in the
    CAFOS 2-3 s frames, 1.02 in the 60 s ones).
    """
    v = img[::step, ::step] if step > 1 else img
    c = v[1:-1, 1:-1]
    lap = 2.0 * c - 0.5 * (v[:-2, 1:-1] + v[2:, 1:-1] + v[1:-1, :-2] + v[1:-1, 2:])
    vv = (var[::step, ::step] if step > 1 else var)[1:-1, 1:-1]
    ok = ~(bad[::step, ::step] if step > 1 else bad)[1:-1, 1:-1] & (vv > 0)
    if ok.sum() < 1000:
        return 1.0
    z = lap[ok] / np.sqrt(5.0 * vv[ok])
    med = np.median(z)
    return float(1.482602218505602 * np.median(np.abs(z - med)))


def count_groups(mask: np.ndarray) -> int:
    """Number of 8-connected groups of ``mask``'s pixels (few pixels: see
    :func:`~tgpcore.calibration.morphology.label_pixels`)."""
    return label_pixels(np.flatnonzero(mask), mask.shape)[1]


class _Sparse:
    """Neighbourhoods of a few pixels of an image, by flat index (pixels off the image are
    left out), without padding or labelling the whole image."""

    def __init__(self, shape: tuple[int, int]):
        self.ny, self.nx = shape
        self.size = shape[0] * shape[1]

    @staticmethod
    def box(half: int, ring: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(dy, dx) of the pixels at Chebyshev distance ring..half (0: the whole box)."""
        d = np.arange(-half, half + 1)
        dy, dx = np.meshgrid(d, d, indexing="ij")
        keep = np.maximum(abs(dy), abs(dx)) >= ring
        return dy[keep], dx[keep]

    def shifted(self, idx: np.ndarray, box: tuple[np.ndarray, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of the pixels at each offset of ``box`` from each of ``idx`` (shape
        len(idx) x len(box)), and whether each is on the image."""
        r, c = np.divmod(idx, self.nx)
        rr, cc = r[:, None] + box[0], c[:, None] + box[1]
        inside = (rr >= 0) & (rr < self.ny) & (cc >= 0) & (cc < self.nx)
        return rr * self.nx + cc, inside

    def pairs(self, idx: np.ndarray, lab: np.ndarray, box) -> np.ndarray:
        """Sorted unique keys label * size + pixel for the pixels (on the image) of ``box``
        around each of ``idx`` (whose labels are ``lab``)."""
        pix, inside = self.shifted(idx, box)
        keys = lab[:, None].astype(np.int64) * self.size + pix
        return np.unique(keys[inside])


def _group_quantile(lab: np.ndarray, val: np.ndarray, n: int, q: float) -> np.ndarray:
    """Per label 0..n-1: the q-th percentile of ``val`` (linear, as ``np.percentile``); NaN
    for labels without values."""
    order = np.lexsort((val, lab))
    lab, val = lab[order], val[order]
    count = np.bincount(lab, minlength=n)
    start = np.concatenate(([0], np.cumsum(count)[:-1]))
    out = np.full(n, np.nan)
    has = count > 0
    pos = (count[has] - 1) * (q / 100.0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, count[has] - 1)
    frac = pos - lo
    out[has] = val[start[has] + lo] * (1 - frac) + val[start[has] + hi] * frac
    return out


def spare_star_like(data: np.ndarray, cr: np.ndarray, bad: np.ndarray, idx: np.ndarray,
                    lab: np.ndarray, n: int, read_noise_e: float, ratio: float = 0.1,
                    nsig: float = 3.0, fwhm_px: float = 2.0,
                    bkg_percentile: float = 50.0) -> np.ndarray:
    """Which detections are not star-like: False for the pixels of groups whose surroundings
    rise like a star's profile.

    ``idx`` are the flagged pixels of ``cr`` (sorted flat indices) and ``lab`` their 8-connected
    group (1..n, :func:`~tgpcore.calibration.morphology.label_pixels`). For each group:
    background = a percentile (``bkg_percentile``) of the pixels
    at 4-6 px from it (the median 2-3 px out instead, when lower, if a pixel 4-6 px out is
    brighter than the group: a faint star on a bright one's wing), peak = its brightest pixel,
    ring = median of its unflagged 8-neighbours
    at a mean distance d from the peak pixel. A star has ring > ``ratio`` x peak x g(d) (above
    the background), where g(d) = exp(-4 ln 2 (d^2 - 1) / fwhm^2) is how much further down a
    Gaussian of ``fwhm_px`` the ring lies when the whole core was flagged (g = 1 at d = 1), and
    a ring excess above ``nsig`` times the ring median's noise. A cosmic ray leaves its
    neighbours at the sky whatever its size. Flagged and bad pixels are in no ring; groups with
    fewer than 3 ring or 8 background pixels stay flagged. All groups at once (flat indices).
    """
    img = _Sparse(cr.shape)
    d = np.asarray(data, np.float32).ravel()
    crf, badf = cr.ravel(), np.asarray(bad, bool).ravel()
    n1 = n + 1

    def split(keys):
        lk, pix = np.divmod(keys, img.size)
        ok = ~(crf[pix] | badf[pix])
        return lk[ok], pix[ok]

    box1 = img.pairs(idx, lab, img.box(1))
    near_l, near_p = split(box1)
    far_keys = img.pairs(idx, lab, img.box(6))
    box3 = img.pairs(idx, lab, img.box(3))
    far_keys = far_keys[~np.isin(far_keys, box3, assume_unique=True)]
    far_l, far_p = split(far_keys)
    n_near = np.bincount(near_l, minlength=n1)
    n_far = np.bincount(far_l, minlength=n1)
    bkg = _group_quantile(far_l, d[far_p], n1, bkg_percentile)
    # the brightest pixel of each group, and the mean squared distance of its ring to it
    order = np.lexsort((-d[idx], lab))
    first = np.concatenate(([True], lab[order][1:] != lab[order][:-1]))
    peak_idx = np.zeros(n1, np.int64)
    peak_idx[lab[order][first]] = idx[order][first]
    # A group with a brighter pixel 4-6 px away sits on a brighter star's wing, which raises
    # that ring's median above the group's own surroundings: its background is the median
    # 2-3 px out instead, when lower.
    far_max = np.full(n1, -np.inf)
    np.maximum.at(far_max, far_l, d[far_p])
    mid_keys = box3[~np.isin(box3, box1, assume_unique=True)]
    mid_l, mid_p = split(mid_keys)
    mid = _group_quantile(mid_l, d[mid_p], n1, 50.0)
    n_mid = np.bincount(mid_l, minlength=n1)
    bkg = np.where((far_max > d[peak_idx]) & (n_mid >= 8), np.minimum(mid, bkg), bkg)
    ring = _group_quantile(near_l, d[near_p], n1, 50.0) - bkg
    peak = d[peak_idx] - bkg
    py, px = np.divmod(peak_idx[near_l], img.nx)
    ny_, nx_ = np.divmod(near_p, img.nx)
    dist2 = np.bincount(near_l, weights=(ny_ - py) ** 2 + (nx_ - px) ** 2,
                        minlength=n1) / np.maximum(n_near, 1)
    noise = 1.25 * np.sqrt(np.maximum(bkg, 0.0) + read_noise_e ** 2) / np.sqrt(
        np.maximum(n_near, 1))
    k = 4.0 * np.log(2.0) / fwhm_px ** 2
    expect = ratio * np.exp(-k * np.maximum(dist2 - 1.0, 0.0))
    with np.errstate(invalid="ignore"):
        star = ((n_near >= 3) & (n_far >= 8) & (peak > 0) & (ring > expect * peak)
                & (ring > nsig * noise))
    star[0] = False
    return ~star[lab]


def grow_tracks(data: np.ndarray, cr: np.ndarray, bad: np.ndarray, var: np.ndarray,
                idx: np.ndarray, lab: np.ndarray, n: int, nsig: float = 5.0,
                iters: int = 3) -> np.ndarray:
    """``cr`` with the neighbours of detections that stand ``nsig`` sigma (sqrt of ``var``)
    above the median of their own unflagged 8-neighbours (the faint parts of tracks), ``iters`` steps at most.

    ``idx`` are ``cr``'s pixels (sorted flat indices) and ``lab`` their groups (1..n). A
    track's missed middle is fainter than its detected part, a star core next to a false
    detection brighter: a pixel joins only if fainter than the peak of the group it touches
    (the brightest such group if several). Pixels off the image count as bad.
    """
    img = _Sparse(cr.shape)
    d = np.asarray(data, np.float32).ravel()
    var = np.asarray(var, np.float32).ravel()
    blocked = np.asarray(bad, bool).ravel()
    out = cr.copy()
    flagged = out.ravel()
    peaks = np.full(n + 1, -np.inf)
    np.maximum.at(peaks, lab, d[idx])
    cur, cur_lim = idx, peaks[lab].astype(np.float32)
    ring8 = img.box(1, ring=1)
    for _ in range(iters):
        cand, inside = img.shifted(cur, ring8)
        lim = np.repeat(cur_lim, len(ring8[0]))
        cand, inside = cand.ravel(), inside.ravel()
        ok = inside.copy()
        ok[inside] = ~flagged[cand[inside]] & ~blocked[cand[inside]]
        cand, lim = cand[ok], lim[ok]
        if not len(cand):
            break
        order = np.lexsort((-lim, cand))         # per pixel, the brightest touching group
        cand, lim = cand[order], lim[order]
        first = np.concatenate(([True], cand[1:] != cand[:-1]))
        cand, lim = cand[first], lim[first]
        nbr, on = img.shifted(cand, ring8)
        nbr = np.where(on, nbr, 0)
        vals = np.where(~on | flagged[nbr] | blocked[nbr], np.nan, d[nbr])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            nb = np.nanmedian(vals, axis=1)
            new = (d[cand] - nb > nsig * np.sqrt(var[cand])) & (d[cand] < lim)
        if not new.any():
            break
        flagged[cand[new]] = True
        cur = np.concatenate((cur, cand[new]))
        cur_lim = np.concatenate((cur_lim, lim[new]))
        order = np.argsort(cur, kind="stable")
        cur, cur_lim = cur[order], cur_lim[order]
    return out
