"""The reference-catalogue plate solver: match detected stars to a catalogue near a hint.

The pixel scale is known (instrument profile) to a few per cent; position (within the search
radius), rotation and parity are not. For each trial rotation and parity the offsets between
every bright detection and every bright catalogue star on the tangent plane are histogrammed;
the true pose gives a peak. The pose is then refined on all matches with an affine fit, and the
WCS fitted with :func:`astropy.wcs.utils.fit_wcs_from_points` (TAN, plus SIP when there are
enough stars).
"""

from __future__ import annotations

import time

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs.utils import fit_wcs_from_points
from scipy.spatial import cKDTree

from tgpcore.astrometry.solution import Solution, wcs_rms_arcsec
from tgpcore.registration.vote import match_nearest, refine_affine, vote_poses


def _tangent(ra0: float, dec0: float, ra: np.ndarray, dec: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    a0, d0 = np.radians(ra0), np.radians(dec0)
    a, d = np.radians(ra), np.radians(dec)
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return np.degrees(xi), np.degrees(eta)


def _near_similarity(a: np.ndarray, scale_tolerance: float) -> bool:
    """True when an affine 2x2 is a rotation (or reflection) with scale close to 1."""
    sv = np.linalg.svd(a, compute_uv=False)
    tol = max(3.0 * scale_tolerance, 0.03)
    return bool(sv[0] / sv[1] < 1.0 + tol and abs(np.sqrt(sv[0] * sv[1]) - 1.0) < tol)


def solve_with_catalogue(xy: np.ndarray, shape: tuple[int, int], ra: np.ndarray,
                         dec: np.ndarray, hint_ra: float, hint_dec: float,
                         scale_arcsec: float, *, search_radius_arcmin: float = 30.0,
                         n_image: int = 100, scale_tolerance: float = 0.01,
                         rotation_deg: tuple[float, float] = (-180.0, 180.0),
                         parities: tuple[int, ...] = (1, -1), min_matches: int = 6,
                         sip_degree: int | None = None, n_poses: int = 16,
                         block_trials: int = 48,
                         flux: np.ndarray | None = None, mag: np.ndarray | None = None
                         ) -> Solution:
    """Solve an image against a reference catalogue near a position hint.

    Parameters
    ----------
    xy : ndarray (n, 2)
        Detected stars (0-based x, y), brightest first.
    shape : (ny, nx)
        Image shape.
    ra, dec : ndarray
        Reference stars (deg, at the image's epoch), brightest first.
    hint_ra, hint_dec : float
        Approximate field centre (deg).
    scale_arcsec : float
        Pixel scale (arcsec/px).
    search_radius_arcmin : float
        How far from the hint the field centre may be.
    n_image : int
        Bright detections used for the coarse match.
    scale_tolerance : float
        Fractional uncertainty of the pixel scale (sets the coarse bin size).
    rotation_deg : (lo, hi)
        Range of field rotations tried.
    parities : tuple
        Orientations tried: -1 = the sky as seen (east left when north is up, e.g. the
        simulator's camera), 1 = mirrored.
    min_matches : int
        Fewer matched stars means failure.
    sip_degree : int, optional
        SIP distortion degree; default 2 when at least 40 stars match, else none.
    flux, mag : ndarray, optional
        Fluxes of the detections and magnitudes of the reference stars. With both, the
        coarse vote also requires a common zero point (see
        :func:`~tgpcore.registration.vote.vote_poses`) and is tried first; without, or when
        that fails, positions alone.
    block_trials : int
        Trial rotations voted on together; the search stops after the first block that
        gives a convincing solution (at least ``max(2 min_matches, 12)`` stars).
    n_poses : int
        Coarse candidates refined per block; the one with most stars matched within ~1" wins (a chance
        alignment of a few stars cannot shrink its residuals to that).

    Returns
    -------
    Solution
        ``ok`` False with a reason when no convincing match was found.
    """
    t0 = time.perf_counter()
    ny, nx = shape
    xy = np.asarray(xy, float)
    if len(xy) < min_matches:
        return Solution.failed("catalogue", f"only {len(xy)} stars detected")
    c = np.array([(nx - 1) / 2.0, (ny - 1) / 2.0])
    s_deg = scale_arcsec / 3600.0
    xi, eta = _tangent(hint_ra, hint_dec, np.asarray(ra, float), np.asarray(dec, float))
    ref_all = np.column_stack([xi, eta]) / s_deg  # tangent plane in pixel units
    half_diag = 0.5 * np.hypot(nx, ny)
    radius_px = search_radius_arcmin * 60.0 / scale_arcsec
    near = np.hypot(*ref_all.T) < radius_px + half_diag
    ref_all = ref_all[near]
    if len(ref_all) < min_matches:
        return Solution.failed("catalogue", f"only {len(ref_all)} reference stars within "
                               f"{search_radius_arcmin:g}' of the hint")
    img = xy[:n_image] - c
    img_mag = ref_mag = None
    if flux is not None and mag is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            img_mag = -2.5 * np.log10(np.asarray(flux, float)[:n_image])
        ref_mag = np.ma.filled(np.asarray(mag, float), np.nan)[near]
    # density-matched depth of the catalogue: as many per field area as detections used
    area_ratio = (np.pi * (radius_px + half_diag) ** 2) / (nx * ny)
    n_ref = int(min(len(ref_all), max(2 * len(img) * area_ratio, 3 * len(img)), 6000))
    ref = ref_all[:n_ref]
    if ref_mag is not None:
        ref_mag = ref_mag[:n_ref]
    bin_px = max(3.0, 2.0 * scale_tolerance * half_diag)
    step = bin_px / half_diag
    lo, hi = np.radians(rotation_deg[0]), np.radians(rotation_deg[1])
    thetas = np.arange(lo, hi, step)
    src = xy - c
    tight_px = max(1.5, 1.0 / scale_arcsec)
    convincing = max(2 * min_matches, 12)
    # likely orientations first (cameras are mostly mounted near a multiple of 90 deg), in
    # blocks, stopping at the first convincing solution
    per_trial = 1 if len(thetas) * len(parities) > 64 else 4
    thetas = thetas[np.argsort(np.abs((thetas + np.pi / 4) % (np.pi / 2) - np.pi / 4),
                               kind="stable")]
    found, best_votes = None, 0
    for use_mag in ((False, True) if img_mag is not None else (False,)):
        # a small first block (cameras are mostly mounted within a fraction of a degree of
        # a multiple of 90 deg), then blocks of ``block_trials``
        edges = [0, min(max(block_trials // 3, 8), len(thetas))]
        while edges[-1] < len(thetas):
            edges.append(min(edges[-1] + block_trials, len(thetas)))
        for k0, k1 in zip(edges[:-1], edges[1:], strict=True):
            poses = vote_poses(img, ref, radius_px + half_diag, bin_px,
                               thetas[k0:k1], parities, keep=n_poses,
                               src_mag=img_mag if use_mag else None,
                               ref_mag=ref_mag if use_mag else None,
                               per_trial=per_trial)
            best_votes = max(best_votes, poses[0].votes if poses else 0)
            for pose in poses:
                if pose.votes < min_matches // 2:
                    break
                i, j, a, b = refine_affine(src, ref_all, pose, bin_px, min_matches)
                if len(i) < min_matches or not _near_similarity(a, scale_tolerance):
                    continue
                # score: matches within a tight tolerance (a chance pose cannot shrink its
                # residuals to that)
                i, j = match_nearest(src @ a.T + b, ref_all, tight_px)
                if len(i) >= min_matches and (found is None or len(i) > len(found[0])):
                    found = (i, j, pose)
            if found is not None and len(found[0]) >= convincing:
                break
        if found is not None and len(found[0]) >= convincing:
            break
    if found is None:
        return Solution.failed("catalogue", f"no consistent pattern (best coarse match: "
                               f"{best_votes} stars; need {min_matches} within "
                               f"{tight_px:.1f} px after refinement)")
    i, j, pose = found
    ra_n = np.asarray(ra, float)[near]
    dec_n = np.asarray(dec, float)[near]
    if sip_degree is None:
        sip_degree = 2 if len(i) >= 40 else None
    # fit, re-match with the fit, and refit until the matched pairs stop changing (3 fits
    # at most; usually 2)
    wcs, fitted = None, None
    for it in range(3):
        pairs = set(zip(i.tolist(), j.tolist(), strict=True))
        if pairs == fitted:
            break
        sky = SkyCoord(ra_n[j] * u.deg, dec_n[j] * u.deg)
        wcs = fit_wcs_from_points((xy[i, 0], xy[i, 1]), sky, proj_point="center",
                                  projection="TAN", sip_degree=sip_degree)
        fitted = pairs
        if it == 2:
            break
        px = np.column_stack(wcs.all_world2pix(ra_n, dec_n, 0))
        d, jj = cKDTree(px).query(xy, distance_upper_bound=max(1.0, 1.0 / scale_arcsec))
        ii = np.nonzero(np.isfinite(d))[0]
        jj = jj[ii]
        order = np.argsort(d[ii])
        _, first = np.unique(jj[order], return_index=True)
        i, j = ii[order[first]], jj[order[first]]
        if len(i) < min_matches:
            return Solution.failed("catalogue", "fit diverged")
    sky = SkyCoord(ra_n[j] * u.deg, dec_n[j] * u.deg)
    rms = wcs_rms_arcsec(wcs, xy[i], sky)
    return Solution(ok=True, solver="catalogue", wcs=wcs, n_matched=int(len(i)),
                    rms_arcsec=rms, seconds=time.perf_counter() - t0,
                    notes=[f"coarse: {pose.votes} votes, rotation "
                           f"{np.degrees(pose.theta):.2f} deg, parity {pose.parity}"])

