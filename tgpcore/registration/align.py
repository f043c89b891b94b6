"""Alignment of one frame onto a reference grid: astroalign, refined on many stars, with a
cross-correlation fallback when too few stars are found.

A transform is a 3x3 homogeneous matrix mapping the frame's 0-based pixel (x, y) to the
reference frame's pixel; it is a similarity (shift, rotation, scale).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from astropy.table import Table
from scipy.spatial import cKDTree

from tgpcore.registration import transform as tf
from tgpcore.registration.stars import detect_stars
from tgpcore.registration.vote import vote_poses


@dataclass
class Alignment:
    """The outcome of aligning one frame.

    ``matrix`` maps the frame's pixels to the reference pixels. ``residual_rms_px`` is the RMS
    distance between matched reference stars and the frame's stars mapped through ``matrix``
    (it includes the centroid noise of both). A rejected frame has ``status='rejected'`` and a
    ``reason``. ``correlation`` is the normalised correlation of the band-passed images
    after shifting, for alignments that used cross-correlation. ``flux_ratio`` is the
    median flux of the reference frame's bright stars measured in this frame over their flux
    in the reference frame (same aperture, :func:`flux_ratio`), with its error and the number
    of stars; ``star_flux`` is each of those stars' flux in this frame (NaN where it could not
    be measured). With the exposure times, frames of one filter compared star by star say
    whether the transparency changed.
    """

    status: str
    method: str
    matrix: list[list[float]] = field(default_factory=lambda: np.eye(3).tolist())
    shift_x_px: float = 0.0
    shift_y_px: float = 0.0
    rotation_deg: float = 0.0
    scale: float = 1.0
    residual_rms_px: float | None = None
    n_matched: int = 0
    n_stars: int = 0
    reason: str | None = None
    correlation: float | None = None
    flux_ratio: float | None = None
    flux_ratio_err: float | None = None
    n_flux: int = 0
    star_flux: list[float] | None = None

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, method: str, **kw: Any) -> Alignment:
        """An accepted alignment with the shift/rotation/scale read from ``matrix``."""
        return cls(status="ok", method=method, matrix=np.asarray(matrix).tolist(),
                   **tf.decompose(matrix), **kw)

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


def match_points(src: np.ndarray, ref: np.ndarray, matrix: np.ndarray, tol_px: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i_src, i_ref) of mutual nearest neighbours closer than ``tol_px`` after mapping."""
    if len(src) == 0 or len(ref) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    mapped = tf.apply(matrix, src)
    d, j = cKDTree(ref).query(mapped, distance_upper_bound=tol_px)
    ok = np.isfinite(d)
    i = np.nonzero(ok)[0]
    j = j[ok]
    back = cKDTree(mapped).query(ref[j])[1]
    mutual = back == i
    return i[mutual], j[mutual]


def refine(src: np.ndarray, ref: np.ndarray, matrix: np.ndarray, tol_px: float = 2.0,
           n_iter: int = 4, clip: float = 3.0) -> tuple[np.ndarray, float, int]:
    """Refit a similarity on all matched stars with outlier clipping.

    Returns
    -------
    matrix, rms_px, n_matched
    """
    rms, n = float("nan"), 0
    for _ in range(n_iter):
        i, j = match_points(src, ref, matrix, tol_px)
        if len(i) < 3:
            break
        m = tf.fit_similarity(src[i], ref[j])
        r = np.hypot(*(tf.apply(m, src[i]) - ref[j]).T)
        keep = r <= max(clip * np.sqrt(np.mean(r**2)), 0.05)
        if keep.sum() >= 3:
            m = tf.fit_similarity(src[i][keep], ref[j][keep])
            r = np.hypot(*(tf.apply(m, src[i][keep]) - ref[j][keep]).T)
        matrix, rms, n = m, float(np.sqrt(np.mean(r**2))), int(keep.sum())
        tol_px = max(min(tol_px, 5 * rms), 0.5)
    return matrix, rms, n


def vote_align(src: np.ndarray, ref: np.ndarray, shape: tuple[int, int],
               max_rotation_deg: float = 3.0, bin_px: float = 2.0
               ) -> tuple[np.ndarray | None, float, int]:
    """Similarity from ``src`` to ``ref`` by offset voting over small rotations.

    Returns
    -------
    matrix or None, rms_px, n_matched
    """
    half_diag = 0.5 * float(np.hypot(*shape))
    step = bin_px / half_diag
    lim = np.radians(max_rotation_deg)
    thetas = np.arange(-lim, lim + step / 2, step)
    poses = vote_poses(src[:80], ref[:150], half_diag, bin_px, thetas)
    best: tuple[np.ndarray | None, float, int] = (None, float("nan"), 0)
    for pose in poses:
        if pose.votes < 3:
            break
        m0 = np.eye(3)
        m0[:2, :2], m0[:2, 2] = pose.matrix(), pose.t
        matrix, rms, n = refine(src, ref, m0, tol_px=bin_px)
        if n > best[2]:
            best = (matrix, rms, n)
    return best


def cross_correlate(data: np.ndarray, mask: np.ndarray | None, ref_data: np.ndarray,
                    ref_mask: np.ndarray | None, min_peak: float = 0.3,
                    smooth_px: float = 1.5) -> tuple[np.ndarray | None, float]:
    """Translation from ``data`` to ``ref_data`` by cross-correlation (sub-pixel).

    Both images are band-passed to the stars' scale first: a Gaussian of ``smooth_px``
    (matched to the PSF, sigma = FWHM / 2.355) less one six times wider, then row medians
    removed (readout banding) and clipped. The correlation is plain, not phase-normalised:
    phase correlation whitens the spectrum and so lets pixel-scale fixed-pattern noise, which
    does not move between frames, win over faint, wide stars (the real M13 frames: FWHM
    ~12 px, peak S/N ~1 per pixel).

    Returns
    -------
    matrix or None, peak
        The translation matrix (None when the normalised correlation after shifting is below
        ``min_peak``) and that correlation.
    """
    a, b = bandpass(data, mask, smooth_px), bandpass(ref_data, ref_mask, smooth_px)
    if a.shape != b.shape:
        ny, nx = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
        a, b = a[:ny, :nx], b[:ny, :nx]
    dy, dx = _xcorr_shift(a, b)
    peak = _shifted_correlation(a, b, dy, dx)
    if not np.isfinite(peak) or peak < min_peak:
        return None, peak
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]]), peak


def bandpass(a: np.ndarray, m: np.ndarray | None, smooth_px: float) -> np.ndarray:
    """Star-scale band-pass for cross-correlation: Gaussian(``smooth_px``) less
    Gaussian(6 x ``smooth_px``), per-row medians removed (readout banding), clipped at
    -3 and +30 robust sigma. Masked and non-finite pixels are set to the median first."""
    from scipy.ndimage import gaussian_filter

    a = np.asarray(a, float)
    bad = ~np.isfinite(a) if m is None else (np.asarray(m, bool) | ~np.isfinite(a))
    med = np.median(a[~bad]) if (~bad).any() else 0.0
    a = np.where(bad, med, a)
    a = gaussian_filter(a, smooth_px) - gaussian_filter(a, 6 * smooth_px)
    a = a - np.median(a, axis=1, keepdims=True)
    sd = 1.4826 * np.median(np.abs(a - np.median(a)))
    return np.clip(a, -3 * sd, 30 * sd)


def _xcorr_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(dy, dx) that moves band-passed ``a`` onto ``b`` (plain correlation, 1/20 px)."""
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(b, a, upsample_factor=20, normalization=None)
    return float(shift[0]), float(shift[1])


def _shifted_correlation(a: np.ndarray, b: np.ndarray, dy: float, dx: float) -> float:
    """Pearson correlation of ``a`` shifted by (dy, dx) with ``b`` over their overlap."""
    from scipy.ndimage import shift as nd_shift

    moved = nd_shift(a, (dy, dx), order=1, cval=0.0)
    inner = (slice(int(abs(dy)) + 2, a.shape[0] - int(abs(dy)) - 2),
             slice(int(abs(dx)) + 2, a.shape[1] - int(abs(dx)) - 2))
    x, y = moved[inner].ravel(), b[inner].ravel()
    if x.size <= 10 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def refine_shifts_static_pattern(images: list[np.ndarray], masks: list[np.ndarray | None],
                                 shifts: np.ndarray, smooth_px: float, n_iter: int = 2
                                 ) -> tuple[np.ndarray, float]:
    """Cross-correlation shifts freed from detector fixed-pattern noise (three frames or more).

    A pattern that does not move between frames (dark or flat residuals, a faint ghost)
    adds a correlation peak at zero shift; when the stars are wide and faint it merges with
    theirs and pulls every shift towards zero. Each pass builds the sky (the median of the
    frames shifted onto the reference), subtracts it from every frame at that frame's
    position, takes the median of what is left in detector coordinates as the static
    pattern, and correlates again with the pattern removed.

    Parameters
    ----------
    images, masks : list
        The frames; ``images[0]`` is the reference.
    shifts : ndarray (n, 2)
        First (dy, dx) of each frame onto the reference (``shifts[0]`` = 0).
    smooth_px : float
        Band-pass scale (PSF sigma).
    n_iter : int
        Passes. The first removes the plain median over frames; later ones the sky-model
        residual. Two passes did best on 12 synthetic drifted fields (median of the worst
        error per field 0.33 px at FWHM 10 px, against 0.75 px for one pass and 0.5 px for
        four; tests/test_registration_xcorr.py).

    Returns
    -------
    shifts : ndarray (n, 2)
        Refined (dy, dx).
    closure_rms_px : float
        RMS over frame pairs (j, k), neither the reference, of the direct shift k -> j less
        ``shifts[k] - shifts[j]``: an empirical error of the shifts (about sqrt(3) times
        that of one shift). NaN with fewer than three frames besides the reference.
    """
    from scipy.ndimage import shift as nd_shift

    band = [bandpass(im, m, smooth_px) for im, m in zip(images, masks, strict=True)]
    sh = np.asarray(shifts, float).copy()
    clean = band
    for it in range(n_iter):
        if it == 0:  # the plain median over frames: stars that moved by more than their
            # FWHM drop out, so this holds even when the first shifts locked onto the pattern
            pattern = np.median(band, axis=0)
        else:
            pairs = list(zip(band, sh, strict=True))
            sky = np.median([nd_shift(b, t, order=1) for b, t in pairs], axis=0)
            pattern = np.median([b - nd_shift(sky, -t, order=1) for b, t in pairs], axis=0)
        clean = [b - pattern for b in band]
        new = np.array([(0.0, 0.0)] + [_xcorr_shift(c, clean[0]) for c in clean[1:]])
        done = np.max(np.abs(new - sh)) < 0.05
        sh = new
        if done:
            break
    errs = [np.asarray(_xcorr_shift(clean[k], clean[j])) - (sh[k] - sh[j])
            for k in range(2, len(clean)) for j in range(1, k)]
    rms = float(np.sqrt(np.mean(np.sum(np.square(errs), axis=1)))) if errs else float("nan")
    return sh, rms


def align_frame(data: np.ndarray, mask: np.ndarray | None, ref_stars: Table,
                ref_data: np.ndarray | None = None, ref_mask: np.ndarray | None = None, *,
                stars: Table | None = None, fwhm_px: float = 3.5, min_stars: int = 6,
                max_residual_px: float = 0.5, max_scale_error: float = 0.01,
                max_rotation_deg: float = 3.0) -> Alignment:
    """Align a frame onto a reference frame.

    Parameters
    ----------
    data, mask : ndarray
        The frame and its bad-pixel mask (True = ignore).
    ref_stars : Table
        Stars of the reference frame (:func:`~tgpcore.registration.stars.detect_stars`).
    ref_data, ref_mask : ndarray, optional
        The reference image, needed only for the cross-correlation fallback.
    stars : Table, optional
        Stars of this frame, if already detected.
    fwhm_px : float
        Expected FWHM for detection.
    min_stars : int
        Fewer stars than this in either frame (or matched) means cross-correlation.
    max_residual_px : float
        Reject when the RMS residual of matched stars exceeds this, or FWHM / 7 when that is
        larger (the centroids of faint, wide stars are good to a fraction of their FWHM).
    max_scale_error : float
        Reject when the fitted scale differs from 1 by more than this.
    max_rotation_deg : float
        Rotations searched by the offset-voting fallback.

    Notes
    -----
    Methods, in order: astroalign (triangle invariants on the brightest stars) refined on all
    matched stars; offset voting (robust when the two star lists differ in depth, e.g. a 2 s
    frame against a 60 s reference); phase cross-correlation (too few stars).

    Returns
    -------
    Alignment
    """
    import astroalign

    max_residual_px = max(max_residual_px, fwhm_px / 7.0)
    tol_px = max(2.0, fwhm_px / 2.0)  # matching radius for stars once a transform is known
    if stars is None:
        stars = detect_stars(data, mask, fwhm_px=fwhm_px)
    src = np.column_stack([stars["x"], stars["y"]]) if len(stars) else np.zeros((0, 2))
    ref = (np.column_stack([ref_stars["x"], ref_stars["y"]]) if len(ref_stars)
           else np.zeros((0, 2)))
    why = f"{len(src)} stars in the frame, {len(ref)} in the reference"
    if len(src) >= min_stars and len(ref) >= min_stars:
        try:
            t, _ = astroalign.find_transform(src[:60], ref[:60], max_control_points=60)
            matrix, rms, n = refine(src, ref, np.asarray(t.params), tol_px=tol_px)
            if n >= min_stars:
                res = Alignment.from_matrix(matrix, "astroalign", residual_rms_px=rms,
                                            n_matched=n, n_stars=len(src))
                return _check(res, max_residual_px, max_scale_error)
            why = f"only {n} stars matched"
        except Exception as exc:  # noqa: BLE001 - astroalign raises several types
            why = f"astroalign failed: {type(exc).__name__}: {exc}"
    if len(src) >= 3 and len(ref) >= 3:
        matrix, rms, n = vote_align(src, ref, data.shape, max_rotation_deg)
        if matrix is not None and n >= min_stars:
            res = Alignment.from_matrix(matrix, "vote", residual_rms_px=rms, n_matched=n,
                                        n_stars=len(src), reason=f"fallback: {why}")
            checked = _check(res, max_residual_px, max_scale_error)
            if checked.status == "ok":
                return checked
            why += f"; offset voting: {checked.reason}"
        else:
            why += f"; offset voting found {n} matches"
    if ref_data is None:
        return Alignment(status="rejected", method="none", n_stars=len(src),
                         reason=f"{why}; no reference image for cross-correlation")
    matrix, peak = cross_correlate(data, mask, ref_data, ref_mask, smooth_px=fwhm_px / 2.3548)
    if matrix is None:
        return Alignment(status="rejected", method="xcorr", n_stars=len(src),
                         reason=f"{why}; cross-correlation failed (correlation {peak:.2f})")
    if len(src) >= min_stars and len(ref) >= min_stars:  # refine on stars from the shift
        m2, rms2, n2 = refine(src, ref, matrix, tol_px=1.5 * tol_px)
        if n2 >= min_stars:
            res = Alignment.from_matrix(m2, "xcorr+stars", residual_rms_px=rms2, n_matched=n2,
                                        n_stars=len(src), reason=f"fallback: {why}",
                                        correlation=peak)
            return _check(res, max_residual_px, max_scale_error)
    rms, n = None, 0
    if len(src) >= 2 and len(ref) >= 2:
        i, j = match_points(src, ref, matrix, tol_px)
        n = len(i)
        if n >= 3:  # fewer stars say nothing about the residual; the correlation vouches
            rms = float(np.sqrt(np.mean(np.sum((tf.apply(matrix, src[i]) - ref[j]) ** 2, 1))))
    res = Alignment.from_matrix(matrix, "xcorr", residual_rms_px=rms, n_matched=n,
                                n_stars=len(src), reason=f"fallback: {why}", correlation=peak)
    return _check(res, max_residual_px, max_scale_error)


def _check(res: Alignment, max_residual_px: float, max_scale_error: float) -> Alignment:
    if res.residual_rms_px is not None and res.residual_rms_px > max_residual_px:
        res.status = "rejected"
        res.reason = (f"residual {res.residual_rms_px:.3f} px > {max_residual_px} px"
                      f" ({res.method})")
    elif abs(res.scale - 1.0) > max_scale_error:
        res.status = "rejected"
        res.reason = f"scale {res.scale:.4f} differs from 1 by more than {max_scale_error}"
    return res


def flux_ratio(data: np.ndarray, mask: np.ndarray | None, ref_data: np.ndarray,
               ref_mask: np.ndarray | None, ref_xy: np.ndarray, matrix: np.ndarray,
               radius_px: float, max_stars: int = 60
               ) -> tuple[float | None, float | None, int, np.ndarray]:
    """Flux of the same stars in a frame over their flux in the reference frame.

    Parameters
    ----------
    data, mask : ndarray
        The frame and its mask (True = bad).
    ref_data, ref_mask : ndarray
        The reference frame and its mask.
    ref_xy : ndarray (n, 2)
        Reference stars (brightest first), in reference pixels.
    matrix : ndarray (3, 3)
        The frame -> reference transform.
    radius_px : float
        Aperture radius (generous: 2.5-3 FWHM, so that seeing changes hardly matter); the
        background is the median of an annulus 1.5-2.5 radii out.
    max_stars : int
        Brightest stars measured.

    Returns
    -------
    ratio, error, n, flux
        Median ratio over stars with no masked pixel in either aperture, its error (from the
        ratios' robust scatter), and the number of stars ((None, None, n) with fewer than 3);
        and the frame's flux of each of the ``max_stars`` reference stars (NaN where masked,
        off the frame or not positive).
    """
    from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture

    xy_ref = np.asarray(ref_xy, float)[:max_stars]
    if len(xy_ref) < 3:
        return None, None, 0, np.full(len(xy_ref), np.nan)
    xy_frame = tf.apply(np.linalg.inv(np.asarray(matrix, float)), xy_ref)

    def measure(img, m, xy):
        ny, nx = img.shape
        r_out = 2.5 * radius_px
        inside = ((xy[:, 0] > r_out) & (xy[:, 0] < nx - 1 - r_out) & (xy[:, 1] > r_out)
                  & (xy[:, 1] < ny - 1 - r_out))
        flux = np.full(len(xy), np.nan)
        if not inside.any():
            return flux
        ap = CircularAperture(xy[inside], radius_px)
        ann = CircularAnnulus(xy[inside], 1.5 * radius_px, r_out)
        m = np.zeros(img.shape, bool) if m is None else np.asarray(m, bool)
        bkg = ApertureStats(img, ann, mask=m).median
        st = ApertureStats(img, ap, mask=m)
        n_bad = ApertureStats(m.astype(float), ap).sum
        f = np.asarray(st.sum, float) - np.asarray(bkg, float) * np.asarray(ap.area)
        f[np.asarray(n_bad) > 0] = np.nan
        flux[inside] = f
        return flux

    f_ref = measure(np.asarray(ref_data, float), ref_mask, xy_ref)
    f = measure(np.asarray(data, float), mask, xy_frame)
    f = np.where(np.isfinite(f) & (f > 0), f, np.nan)
    ok = np.isfinite(f) & np.isfinite(f_ref) & (f_ref > 0)
    n = int(ok.sum())
    if n < 3:
        return None, None, n, f
    r = f[ok] / f_ref[ok]
    med = float(np.median(r))
    err = float(1.2533 * 1.4826 * np.median(np.abs(r - med)) / np.sqrt(n))
    return med, err, n, f
