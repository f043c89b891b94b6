"""The reference-catalogue plate solver: match detected stars to a catalogue near a hint.

The pixel scale is known (instrument profile) to a few per cent; position (within the search
radius), rotation and parity are not.

1. **Coarse pose** (:mod:`tgpcore.astrometry.coarse`): for trial rotations and parities,
   offsets between detections and catalogue stars are voted on, with a zero-point (magnitude)
   constraint where both lists have magnitudes. The search goes from the likely to the
   unlikely: a small search radius before the full one, camera orientations near a multiple
   of 90 deg first, and at each step a shallow and a deep cut of the detections (a reference
   that lacks the image's brightest stars -- SDSS in a cluster core -- shares its fainter
   ones). Candidates are refined to affine maps and the best is kept only when it matches
   many stars within a tight tolerance *and* clearly more than any other distinct candidate
   (chance poses, refined the same way, are the null).
2. **Fine solution** (:mod:`tgpcore.astrometry.distortion`): all detections are re-matched
   against the whole reference through the current solution, and a TAN or TAN-SIP WCS is
   fitted, its distortion degree chosen by leave-one-out cross-validation and outliers
   clipped, until the matched stars stop changing.
"""

from __future__ import annotations

import time

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from scipy.spatial import cKDTree

from tgpcore.astrometry.coarse import (
    Candidate,
    distinct_best,
    match_tree,
    refine,
    same_as_any,
    vote,
)
from tgpcore.astrometry.distortion import PlateFit, fit_plate
from tgpcore.astrometry.solution import Solution, wcs_rms_arcsec
from tgpcore.gnomonic import to_tangent

#: The best candidate must match this many times more stars (plus 2) than any other distinct
#: one that matches ``min_matches``.
DISTINCT_RATIO = 2.0
#: A candidate matching fewer stars is only believed after the whole search (see
#: ``believed`` in :func:`solve_with_catalogue`).
STRONG = 12


def _near_similarity(a: np.ndarray, scale_tolerance: float) -> bool:
    """True when an affine 2x2 is a rotation (or reflection) with scale close to 1."""
    sv = np.linalg.svd(a, compute_uv=False)
    tol = max(3.0 * scale_tolerance, 0.03)
    return bool(sv[0] / sv[1] < 1.0 + tol and abs(np.sqrt(sv[0] * sv[1]) - 1.0) < tol)


def _needed(best: Candidate | None, n_det: int, ref: np.ndarray, shape: tuple[int, int],
            tight_px: float, min_matches: int) -> int:
    """Stars a candidate must match within the tight tolerance to be believed.

    At least ``min_matches``, and well above what chance gives where the reference is dense:
    ``lam + 5 sqrt(lam) + 1`` with ``lam`` three times the expected number of chance
    coincidences (detections x reference stars on the image x tolerance area / image area;
    three for the freedom of the affine refinement).
    """
    ny, nx = shape
    base = min_matches
    if best is None or best.a is None:
        return base
    c = np.array([(nx - 1) / 2.0, (ny - 1) / 2.0])
    inv = np.linalg.inv(best.a)
    img = (ref - best.b) @ inv.T + c  # reference stars in image pixels
    on = int(np.sum((img[:, 0] >= 0) & (img[:, 0] <= nx - 1) & (img[:, 1] >= 0)
                    & (img[:, 1] <= ny - 1)))
    lam = 3.0 * n_det * on * np.pi * tight_px**2 / (nx * ny)
    return int(max(base, np.ceil(lam + 5.0 * np.sqrt(lam) + 1.0)))


def _zero_point_scatter(best: Candidate, img_mag: np.ndarray, mag_n: np.ndarray) -> float:
    """Robust scatter (mag) of ``ref mag - instrumental mag`` over a candidate's matched
    stars (NaN with fewer than 4 having both)."""
    dz = mag_n[best.j] - img_mag[best.i]
    dz = dz[np.isfinite(dz)]
    if len(dz) < 4:
        return float("nan")
    return float(1.4826 * np.median(np.abs(dz - np.median(dz))))


def _null_scatter(img_mag: np.ndarray, mag_n: np.ndarray) -> float:
    """The same scatter for chance pairs: every detection's magnitude against every
    reference star's (their spreads combined)."""
    a, b = img_mag[np.isfinite(img_mag)], mag_n[np.isfinite(mag_n)]
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    mad = lambda v: 1.4826 * np.median(np.abs(v - np.median(v)))  # noqa: E731
    return float(np.hypot(mad(a), mad(b)))


def _convincing(best: Candidate | None, second: int, needed: int) -> bool:
    return (best is not None and best.n_tight >= needed
            and best.n_tight >= DISTINCT_RATIO * second + 2)


def _depths(n: int, n_image: int | None) -> list[int]:
    if n_image is not None:
        return [min(n, int(n_image))]
    return sorted({min(n, 120), min(n, 400)})


def solve_with_catalogue(xy: np.ndarray, shape: tuple[int, int], ra: np.ndarray,
                         dec: np.ndarray, hint_ra: float, hint_dec: float,
                         scale_arcsec: float, *, search_radius_arcmin: float = 30.0,
                         n_image: int | None = None, scale_tolerance: float = 0.01,
                         rotation_deg: tuple[float, float] = (-180.0, 180.0),
                         parities: tuple[int, ...] = (1, -1), min_matches: int = 6,
                         sip_degree: int | None = None, max_sip_degree: int = 5,
                         n_poses: int = 8, block_trials: int = 48,
                         flux: np.ndarray | None = None, mag: np.ndarray | None = None,
                         time_limit_s: float | None = None) -> Solution:
    """Solve an image against a reference catalogue near a position hint.

    Parameters
    ----------
    xy : ndarray (n, 2)
        Detected stars (0-based x, y), brightest first. All of them are used for the final
        fit; the brightest ``n_image`` (or a shallow and a deep cut) for the coarse match.
    shape : (ny, nx)
        Image shape.
    ra, dec : ndarray
        Reference stars (deg, at the image's epoch), brightest first.
    hint_ra, hint_dec : float
        Approximate field centre (deg).
    scale_arcsec : float
        Pixel scale (arcsec/px).
    search_radius_arcmin : float
        How far from the hint the field centre may be. Smaller radii (about the field's
        size) are searched first.
    n_image : int, optional
        Detections used for the coarse match (default: 120, then 400).
    scale_tolerance : float
        Fractional uncertainty of the pixel scale (sets the coarse bin size).
    rotation_deg : (lo, hi)
        Range of field rotations tried.
    parities : tuple
        Orientations tried: -1 = the sky as seen (east left when north is up, e.g. the
        simulator's camera), 1 = mirrored.
    min_matches : int
        Fewer matched stars means failure. A solution must match within the tight
        tolerance at least that many stars, well above the chance coincidences the
        reference's density allows (:func:`_needed`), and twice as many (plus 2) as any
        other distinct candidate that matches ``min_matches``.
    sip_degree : int, optional
        Distortion: None (default) chooses the degree by cross-validation, up to
        ``max_sip_degree``; 1 (or 0) fits a plain TAN; k >= 2 at most that SIP degree.
    max_sip_degree : int
        Highest SIP degree tried.
    flux, mag : ndarray, optional
        Fluxes of the detections and magnitudes of the reference stars. With both, coarse
        candidates are also scored with a common zero point.
    n_poses : int
        Coarse candidates refined per block, depth, parity and score.
    block_trials : int
        Trial rotations voted on together; the search stops after the first block that
        gives a convincing solution.
    time_limit_s : float, optional
        Stop searching after this long (the best convincing candidate so far, if any, is
        used).

    Returns
    -------
    Solution
        ``ok`` False with a reason when no convincing match was found. On success
        ``rms_arcsec`` and ``n_matched`` are those of the stars kept by the fit,
        ``sip_degree`` the distortion degree (None: TAN), ``residuals`` the per-star
        residuals (x, y, east and north in arcsec, kept flag).
    """
    t0 = time.perf_counter()
    ny, nx = shape
    xy = np.asarray(xy, float)
    if len(xy) < min_matches:
        return Solution.failed("catalogue", f"only {len(xy)} stars detected")
    c = np.array([(nx - 1) / 2.0, (ny - 1) / 2.0])
    s_deg = scale_arcsec / 3600.0
    xi, eta = to_tangent(hint_ra, hint_dec, np.asarray(ra, float), np.asarray(dec, float))
    ref_all = np.column_stack([xi, eta]) / s_deg  # tangent plane in pixel units
    half_diag = 0.5 * np.hypot(nx, ny)
    radius_px = search_radius_arcmin * 60.0 / scale_arcsec
    near = np.hypot(*ref_all.T) < radius_px + half_diag
    ref_n = ref_all[near]
    if len(ref_n) < min_matches:
        return Solution.failed("catalogue", f"only {len(ref_n)} reference stars within "
                               f"{search_radius_arcmin:g}' of the hint")
    ra_n = np.asarray(ra, float)[near]
    dec_n = np.asarray(dec, float)[near]
    mag_n = None if mag is None else np.ma.filled(np.asarray(mag, float), np.nan)[near]
    img_mag = None
    if flux is not None and mag_n is not None and np.isfinite(mag_n).any():
        with np.errstate(invalid="ignore", divide="ignore"):
            img_mag = -2.5 * np.log10(np.asarray(flux, float))
        img_mag = np.where(np.isfinite(img_mag), img_mag, np.nan)
    src = xy - c
    tree = cKDTree(ref_n)
    corners = np.array([[-c[0], -c[1]], [c[0], -c[1]], [c[0], c[1]], [-c[0], c[1]]])
    tight_px = max(1.5, 1.0 / scale_arcsec)
    lo, hi = np.radians(rotation_deg[0]), np.radians(rotation_deg[1])
    field_arcmin = 2.0 * half_diag * scale_arcsec / 60.0
    small = max(5.0, 0.5 * field_arcmin)
    radii = [small, search_radius_arcmin] if search_radius_arcmin > 1.5 * small \
        else [search_radius_arcmin]
    depths = _depths(len(xy), n_image)
    refined: list[Candidate] = []
    best, second, second_all, stopped = None, 0, 0, False

    def out_of_time() -> bool:
        return time_limit_s is not None and time.perf_counter() - t0 > time_limit_s

    def believed(strong: bool) -> bool:
        """A strong candidate is taken at once; a weak one (fewer than ``STRONG`` stars)
        only after the whole search, when it also stands 3 stars above every other
        candidate and its stars share a zero point (with magnitudes)."""
        if best is None:
            return False
        need = _needed(best, len(xy), ref_n, shape, tight_px, min_matches)
        if not _convincing(best, second, need):
            return False
        if best.n_tight >= max(need, STRONG):
            return True
        if strong:
            return False
        if best.n_tight < second_all + 3:
            return False
        if img_mag is None:
            return True
        zp, null = _zero_point_scatter(best, img_mag, mag_n), _null_scatter(img_mag, mag_n)
        return bool(np.isfinite(zp) and zp <= 0.5 * null) or not np.isfinite(zp)

    for radius in radii:
        r_px = radius * 60.0 / scale_arcsec + half_diag
        # the coarse tolerance: the scale's uncertainty across the image, and no finer than
        # 1/600 of the offsets searched (a histogram of at most ~600^2 bins)
        bin_px = max(3.0, 2.0 * scale_tolerance * half_diag, 2.0 * r_px / 600.0)
        thetas = np.arange(lo, hi, bin_px / half_diag)
        # likely orientations first (cameras are mostly mounted near a multiple of 90 deg):
        # a small first block, then blocks of ``block_trials``
        thetas = thetas[np.argsort(np.abs((thetas + np.pi / 4) % (np.pi / 2) - np.pi / 4),
                                   kind="stable")]
        edges = [0, min(max(block_trials // 3, 8), len(thetas))]
        while edges[-1] < len(thetas):
            edges.append(min(edges[-1] + block_trials, len(thetas)))
        sub = np.nonzero(np.hypot(*ref_n.T) < r_px)[0]
        area_ratio = np.pi * r_px**2 / (nx * ny)
        for k0, k1 in zip(edges[:-1], edges[1:], strict=True):
            block: list[list[Candidate]] = []
            for depth in depths:
                # density-matched depth of the catalogue: twice the detections' density
                n_ref = int(min(len(sub), max(2 * depth * area_ratio, 3 * depth), 6000))
                rs = sub[:n_ref]
                for parity in parities:
                    by_pos, by_mag = vote(src[:depth], ref_n[rs], thetas[k0:k1], parity, r_px,
                                          bin_px, None if img_mag is None else img_mag[:depth],
                                          None if img_mag is None else mag_n[rs])
                    block += [by_pos, by_mag]
            todo: list[Candidate] = []
            for cands in block:
                todo += sorted(cands, key=lambda q: -q.score)[:n_poses]
            for cand in todo:
                cand.a, cand.b = cand.matrix(), np.asarray(cand.t, float)
                if same_as_any(cand, refined, corners, bin_px):
                    continue
                refine(src, ref_n, tree, cand, bin_px, tight_px, min_matches)
                cand.valid = (cand.n_tight >= min_matches
                              and _near_similarity(cand.a, scale_tolerance))
                refined.append(cand)
            best, second, second_all = distinct_best(refined, corners, 2.0 * tight_px)
            if believed(strong=True):
                break
            if out_of_time():
                stopped = True
                break
        if stopped or believed(strong=True):
            break
    if not believed(strong=False):
        got = best.n_tight if best is not None else 0
        need = _needed(best, len(xy), ref_n, shape, tight_px, min_matches)
        why = (f"best candidate matched {got} stars within {tight_px:.1f} px, the next "
               f"distinct one {second_all}; a solution needs >= {need} (>= {STRONG} to be "
               f"taken at once), {DISTINCT_RATIO:g}x plus 2 of any other that matches "
               f">= {min_matches}")
        if best is not None and best.n_tight < STRONG and img_mag is not None:
            why += (f", and a zero point common to the matched stars (scatter "
                    f"{_zero_point_scatter(best, img_mag, mag_n):.2f} mag against "
                    f"{_null_scatter(img_mag, mag_n):.2f} for chance pairs)")
        if stopped:
            why += f" (search stopped after {time_limit_s:g} s)"
        return Solution.failed("catalogue", f"no convincing match ({why})")
    sol = _fine_fit(xy, src, ref_n, ra_n, dec_n, best, shape, scale_arcsec, tight_px,
                    min_matches, sip_degree, max_sip_degree,
                    None if flux is None else np.asarray(flux, float))
    sol.seconds = time.perf_counter() - t0
    sol.notes.insert(0, f"coarse: rotation {np.degrees(best.theta):.2f} deg, parity "
                        f"{best.parity}, {best.n_tight} stars within {tight_px:.1f} px (next "
                        f"distinct candidate {second}); {'magnitude' if best.use_mag else 'position'}"
                        f" vote {best.score}")
    return sol


def _fine_fit(xy: np.ndarray, src: np.ndarray, ref_n: np.ndarray, ra_n: np.ndarray,
              dec_n: np.ndarray, best: Candidate, shape: tuple[int, int], scale_arcsec: float,
              tight_px: float, min_matches: int, sip_degree: int | None,
              max_sip_degree: int, flux: np.ndarray | None = None) -> Solution:
    """Re-match every detection against the whole reference and fit the WCS, until the
    matched pairs stop changing (6 rounds at most)."""
    degree = None if sip_degree is None else max(int(sip_degree), 1)
    i, j = best.i, best.j
    fit: PlateFit | None = None
    pairs_seen: set[tuple[tuple[int, int], ...]] = set()
    s_deg = scale_arcsec / 3600.0
    for _ in range(6):
        if len(i) < max(min_matches, 3):
            return Solution.failed("catalogue", f"only {len(i)} stars left after re-matching")
        fit = fit_plate(xy[i], ra_n[j], dec_n[j], shape, degree=degree,
                        max_degree=max_sip_degree, flux=None if flux is None else flux[i])
        key = tuple(zip(i.tolist(), j.tolist(), strict=True))
        if key in pairs_seen:
            break
        pairs_seen.add(key)
        ra0, dec0 = fit.wcs.wcs.crval
        xi_d, eta_d = fit.standard(xy)
        xi_r, eta_r = to_tangent(ra0, dec0, ra_n, dec_n)
        sigma_px = float(np.median(np.hypot(*fit.resid_arcsec[fit.used].T))) / 1.1774 \
            / scale_arcsec
        tol = min(tight_px, max(1.0, 5.0 * sigma_px))
        i2, j2 = match_tree(np.column_stack([xi_d, eta_d]) / s_deg,
                            cKDTree(np.column_stack([xi_r, eta_r]) / s_deg), tol)
        order = np.argsort(i2, kind="stable")
        i, j = i2[order], j2[order]
    used = fit.used
    sky = SkyCoord(ra_n[j][used] * u.deg, dec_n[j][used] * u.deg)
    rms = wcs_rms_arcsec(fit.wcs, xy[i][used], sky)
    resid = residual_table(fit.wcs, xy[i], ra_n[j], dec_n[j], used)
    notes = [f"fit: {'TAN' if fit.degree == 1 else f'TAN-SIP degree {fit.degree}'} on "
             f"{int(used.sum())} stars ({int((~used).sum())} clipped), RMS {rms:.3f}\"; "
             "leave-one-out RMS by degree: "
             + ", ".join(f"{k}: {v:.3f}\"" for k, v in fit.cv_arcsec.items())]
    return Solution(ok=True, solver="catalogue", wcs=fit.wcs, n_matched=int(used.sum()),
                    rms_arcsec=rms, notes=notes, sip_degree=fit.sip_degree,
                    n_rejected=int((~used).sum()), residuals=resid,
                    cv_arcsec=dict(fit.cv_arcsec))


def residual_table(wcs, xy: np.ndarray, ra: np.ndarray, dec: np.ndarray,
                   used: np.ndarray) -> dict[str, list]:
    """Per-star residuals of matched pairs through a WCS: ``x``, ``y`` (0-based px),
    ``dx_px``, ``dy_px`` (catalogue position through the WCS minus the detection),
    ``east_arcsec``, ``north_arcsec`` (catalogue minus the detection through the WCS, on the
    sky) and ``used``."""
    px = np.column_stack(wcs.all_world2pix(ra, dec, 0, quiet=True))
    r0, d0 = wcs.all_pix2world(xy[:, 0], xy[:, 1], 0)
    xi, eta = to_tangent(float(np.mean(r0)), float(np.mean(d0)), np.asarray(ra, float),
                      np.asarray(dec, float))
    xi0, eta0 = to_tangent(float(np.mean(r0)), float(np.mean(d0)), r0, d0)
    return {"x": xy[:, 0].tolist(), "y": xy[:, 1].tolist(),
            "dx_px": (px[:, 0] - xy[:, 0]).tolist(), "dy_px": (px[:, 1] - xy[:, 1]).tolist(),
            "east_arcsec": ((xi - xi0) * 3600.0).tolist(),
            "north_arcsec": ((eta - eta0) * 3600.0).tolist(),
            "used": np.asarray(used, bool).tolist()}


def check_wcs(wcs, xy: np.ndarray, ra: np.ndarray, dec: np.ndarray, shape: tuple[int, int],
              scale_arcsec: float, tol_px: float | None = None) -> dict:
    """Measure a given WCS against a reference catalogue, without refitting it.

    Detections are matched to the catalogue stars that fall on the image through ``wcs``,
    within ``tol_px`` (default: 1" or 1.5 px, whichever is larger).

    Returns
    -------
    dict
        ``n_in_field`` (catalogue stars on the image), ``n_matched``, ``rms_arcsec`` (None
        with no match), ``residuals`` (see :func:`residual_table`) and ``confirmed``: at
        least 12 stars matched, or 6 and half the catalogue stars on the image; None when
        fewer than 6 catalogue stars fall on the image (it cannot be checked).
    """
    ny, nx = shape
    tol = tol_px if tol_px is not None else max(1.5, 1.0 / scale_arcsec)
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    lin = np.column_stack(wcs.wcs_world2pix(ra, dec, 0))  # linear part: a safe pre-selection
    margin = 0.1 * max(nx, ny)
    near = np.nonzero((lin[:, 0] > -margin) & (lin[:, 0] < nx - 1 + margin)
                      & (lin[:, 1] > -margin) & (lin[:, 1] < ny - 1 + margin))[0]
    px = np.column_stack(wcs.all_world2pix(ra[near], dec[near], 0, quiet=True))
    on = (px[:, 0] >= 0) & (px[:, 0] <= nx - 1) & (px[:, 1] >= 0) & (px[:, 1] <= ny - 1)
    out: dict = {"n_in_field": int(on.sum()), "n_matched": 0, "rms_arcsec": None,
                 "residuals": None, "confirmed": None}
    if len(near) == 0 or len(xy) == 0:
        out["confirmed"] = None if on.sum() < 6 else False
        return out
    i, j = match_tree(np.asarray(xy, float), cKDTree(px), tol)
    out["n_matched"] = int(len(i))
    if len(i):
        sky = SkyCoord(ra[near][j] * u.deg, dec[near][j] * u.deg)
        out["rms_arcsec"] = wcs_rms_arcsec(wcs, np.asarray(xy, float)[i], sky)
        out["residuals"] = residual_table(wcs, np.asarray(xy, float)[i], ra[near][j],
                                          dec[near][j], np.ones(len(i), bool))
    if on.sum() < 6:
        out["confirmed"] = None
    else:
        out["confirmed"] = bool(len(i) >= 12 or (len(i) >= 6 and len(i) >= 0.5 * on.sum()))
    return out
