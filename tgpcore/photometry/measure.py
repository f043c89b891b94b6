"""Photometry of one image: background, detection, FWHM, apertures, flags, aperture
correction and, for blended stars, PSF fitting. Arrays in, a table and a summary out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from astropy.table import Table

from tgpcore.photometry import flags as F
from tgpcore.photometry.apcorr import curve_of_growth
from tgpcore.photometry.aperture import aperture_photometry_table, neighbour_map
from tgpcore.photometry.background import estimate_background
from tgpcore.photometry.detect import detect_stars, measure_fwhm, refine_centroids
from tgpcore.photometry.psf import moffat_alpha

MAG_PER_LN = 2.5 / np.log(10.0)


class NoStarsError(ValueError):
    """No star was found on the image (a clear failure for that image)."""


@dataclass
class PhotometryConfig:
    """Parameters of :func:`measure_image` (radii in units of the measured FWHM)."""

    fwhm_guess_px: float = 3.5
    nsigma: float = 4.0
    r_ap_fwhm: float = 1.2
    r_in_fwhm: float = 3.0
    r_out_fwhm: float = 5.0
    blend_fwhm: float = 2.0
    blend_min_ratio: float = 0.05
    # also blended: neighbours' wings put more than this fraction of the star's flux into its
    # aperture (0: off)
    blend_max_contamination: float = 0.02
    psf: str = "auto"  # 'auto' (blended stars), 'off', 'all'
    apcorr_min_snr: float = 50.0
    bkg_box_px: int = 128
    min_stars: int = 1
    fill_max_px: int = 4  # masked groups this small are filled before measuring (0: off)
    # sky annulus pixels where a detected neighbour's profile exceeds this fraction of the
    # pixel noise are left out (0: off; see tgpcore.photometry.aperture.neighbour_map)
    neighbour_threshold: float = 0.1
    # variance of sums over apertures / sum of the pixel variances (a resampled stack's
    # correlated noise: its VARSUMF card); scales the aperture and sky errors
    sum_variance_factor: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


def fill_small_masked(data: np.ndarray, mask: np.ndarray | None, max_px: int = 4,
                      error: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray | None, int, np.ndarray | None]:
    """Fill small masked groups (hot pixels, cosmic-ray hits) from their neighbours.

    Each 8-connected masked group of at most ``max_px`` pixels takes the median of the
    unmasked pixels around it (and their median uncertainty), and is unmasked. Larger groups
    (saturated cores, bad columns) stay masked. Without this, one hot pixel anywhere in an aperture loses that pixel's flux
    and flags the star: on the real NGC 2420 night (no darks, ~2.5 % of the pixels hot),
    almost every aperture had one.

    Returns
    -------
    data, mask, n_filled, error
        A filled copy of the image, the remaining mask, the number of pixels filled and the
        uncertainty image with the filled pixels' values.
    """
    if mask is None or max_px <= 0 or not mask.any():
        return data, mask, 0, error
    from scipy import ndimage

    k8 = np.ones((3, 3), bool)
    lab, n = ndimage.label(mask, structure=k8)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    small = (sizes <= max_px)
    small[0] = False
    fill = small[lab]
    if not fill.any():
        return data, mask, 0, error
    out = np.array(data, float, copy=True)
    err = None if error is None else np.array(error, float, copy=True)
    ny, nx = mask.shape
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None or not small[i]:
            continue
        box = (slice(max(sl[0].start - 1, 0), min(sl[0].stop + 1, ny)),
               slice(max(sl[1].start - 1, 0), min(sl[1].stop + 1, nx)))
        g = lab[box] == i
        ring = ndimage.binary_dilation(g, k8) & ~mask[box]
        if ring.any() and (err is None or np.isfinite(err[box][ring]).any()):
            out[box][g] = np.median(out[box][ring])
            if err is not None:
                err[box][g] = np.nanmedian(err[box][ring])
        else:
            fill[box][g] = False
    return out, mask & ~fill, int(fill.sum()), err


def _core_masked(mask: np.ndarray | None, x: np.ndarray, y: np.ndarray, r: float
                 ) -> np.ndarray:
    """True where a masked pixel lies within ``r`` of a star's centre."""
    if mask is None or not mask.any() or len(x) == 0:
        return np.zeros(len(x), bool)
    ny, nx = mask.shape
    R = int(np.ceil(r))
    off = np.arange(-R, R + 1)
    oy, ox = np.meshgrid(off, off, indexing="ij")
    sel = np.hypot(oy, ox) <= r
    oy, ox = oy[sel], ox[sel]
    ix = np.clip(np.rint(x).astype(int)[:, None] + ox[None, :], 0, nx - 1)
    iy = np.clip(np.rint(y).astype(int)[:, None] + oy[None, :], 0, ny - 1)
    return mask[iy, ix].any(axis=1)


def blended(x: np.ndarray, y: np.ndarray, flux: np.ndarray, radius_px: float,
            min_ratio: float = 0.05, fwhm_px: float | None = None, r_ap_px: float | None = None,
            max_contamination: float = 0.0, beta: float = 2.5) -> np.ndarray:
    """True where a neighbour at least ``min_ratio`` times as bright lies within
    ``radius_px``; and, given ``fwhm_px``, ``r_ap_px`` and ``max_contamination`` > 0, where
    brighter neighbours further out put more than ``max_contamination`` of the star's flux
    into its aperture through their wings (a Moffat profile of that FWHM with broad wings,
    ``beta`` = 2.5, evaluated at the star's centre times the aperture's area).

    A star 20 times fainter than a neighbour 3.5 FWHM away has ~2 % of its aperture flux
    from that neighbour: blended for photometry although the two are well resolved.
    """
    from scipy.spatial import cKDTree

    n = len(x)
    out = np.zeros(n, bool)
    if n < 2:
        return out
    tree = cKDTree(np.column_stack([x, y]))
    f = np.maximum(np.asarray(flux, float), 0.0)
    for i, j in tree.query_pairs(radius_px, output_type="ndarray"):
        if f[j] >= min_ratio * f[i]:
            out[i] = True
        if f[i] >= min_ratio * f[j]:
            out[j] = True
    if fwhm_px is None or r_ap_px is None or max_contamination <= 0:
        return out
    alpha = moffat_alpha(fwhm_px, beta)
    pairs = tree.query_pairs(12.0 * fwhm_px, output_type="ndarray")
    if len(pairs) == 0:
        return out
    i, j = pairs[:, 0], pairs[:, 1]
    d = np.hypot(x[i] - x[j], y[i] - y[j])
    # a neighbour's flux fraction per pixel at distance d, times the aperture's area
    frac = (beta - 1.0) / (np.pi * alpha**2) * (1.0 + (d / alpha) ** 2) ** (-beta) \
        * np.pi * r_ap_px**2
    contam = np.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.add.at(contam, i, np.where(f[i] > 0, f[j] * frac / np.where(f[i] > 0, f[i], 1), 0.0))
        np.add.at(contam, j, np.where(f[j] > 0, f[i] * frac / np.where(f[j] > 0, f[j], 1), 0.0))
    return out | (contam > max_contamination)


def measure_image(data: np.ndarray, error: np.ndarray | None, mask: np.ndarray | None,
                  config: PhotometryConfig | None = None) -> tuple[Table, dict[str, Any]]:
    """Detect and measure the stars of one image.

    Parameters
    ----------
    data : ndarray
        The image, e.g. a stack in e-/s.
    error : ndarray or None
        Its propagated uncertainty (same unit); without it only the background noise is used.
    mask : ndarray of bool or None
        Bad pixels.
    config : PhotometryConfig, optional

    Returns
    -------
    table : astropy.table.Table
        One row per star: ``id``, ``x``, ``y`` (0-based), ``flux`` (total, aperture-corrected;
        PSF flux for crowded stars), ``flux_err``, ``mag_inst`` (= -2.5 log10 flux),
        ``mag_err`` (including the aperture-correction error), ``snr``, ``flux_ap`` (raw
        aperture flux), ``bkg``, ``peak_snr``, ``sharpness``, ``roundness1``, ``flags``.
    summary : dict
        ``n_stars``, ``fwhm_px``, radii, ``apcorr`` (dict), ``psf`` (shape and counts),
        ``bkg_rms`` and ``n_flagged`` per flag.

    Raises
    ------
    NoStarsError
        When nothing is detected.
    """
    cfg = config or PhotometryConfig()
    data = np.asarray(data, float)
    mask = None if mask is None else np.asarray(mask, bool)
    bkg = estimate_background(data, mask, box_px=cfg.bkg_box_px)
    sub = data - bkg.background
    if mask is not None:
        sub[mask] = 0.0
    err_img = np.asarray(error, float) if error is not None else bkg.rms
    stars = detect_stars(sub, bkg.rms, cfg.fwhm_guess_px, cfg.nsigma, mask)
    if len(stars) < max(cfg.min_stars, 1):
        raise NoStarsError(f"no star found above {cfg.nsigma:g} sigma "
                           f"(background rms {bkg.median_rms:.3g})")
    fwhm, n_fwhm = measure_fwhm(sub, stars, cfg.fwhm_guess_px, mask)
    if abs(fwhm / cfg.fwhm_guess_px - 1.0) > 0.3:
        again = detect_stars(sub, bkg.rms, fwhm, cfg.nsigma, mask)
        if len(again):
            stars = again
            fwhm, n_fwhm = measure_fwhm(sub, stars, fwhm, mask)
    r_ap, r_in, r_out = cfg.r_ap_fwhm * fwhm, cfg.r_in_fwhm * fwhm, cfg.r_out_fwhm * fwhm
    x, y = refine_centroids(sub, stars["x"], stars["y"], fwhm, mask)
    # small masked groups (hot pixels, cosmic rays) are filled for the measurement
    core_mask = mask
    data, mask, n_filled, err_img = fill_small_masked(data, mask, cfg.fill_max_px, err_img)
    if n_filled:
        sub = data - bkg.background
        sub[mask] = 0.0
    # Detected neighbours' wings are kept out of each star's sky annulus. (Not out of the
    # curve of growth's: its stars are isolated, and there a masked sky would miss the
    # faint stars' light that its large apertures hold, steepening the growth.)
    nmap = neighbour_map(data.shape, x, y, np.asarray(stars["peak_snr"], float), fwhm,
                         threshold=cfg.neighbour_threshold) \
        if cfg.neighbour_threshold > 0 else None
    phot = aperture_photometry_table(data, err_img, mask, x, y, r_ap, r_in, r_out,
                                     neighbours=nmap)
    with np.errstate(divide="ignore", invalid="ignore"):
        real = np.asarray(phot["flux"], float) / np.asarray(phot["flux_err"], float) >= 5.0
    if not real.any():
        raise NoStarsError(f"no star found: {len(x)} peaks above {cfg.nsigma:g} sigma, none "
                           "with an aperture S/N of 5")
    fl = np.asarray(phot["flags"], np.int64)
    fl[_core_masked(mask, x, y, fwhm)] |= F.SATURATED
    if n_filled:
        # a filled pixel at the very peak: its value (a median of the neighbours) is too low
        fl[_core_masked(core_mask & ~mask, x, y, 0.5 * fwhm)] |= F.NEAR_MASK
    flux_ap = np.asarray(phot["flux"], float)
    err_ap = np.asarray(phot["flux_err"], float) * np.sqrt(max(cfg.sum_variance_factor, 1.0))
    is_blend = blended(x, y, flux_ap, cfg.blend_fwhm * fwhm, cfg.blend_min_ratio,
                       fwhm_px=fwhm, r_ap_px=r_ap, max_contamination=cfg.blend_max_contamination)
    fl[is_blend] |= F.BLENDED
    with np.errstate(divide="ignore", invalid="ignore"):
        snr_ap = flux_ap / err_ap
    cand = F.is_clean(fl) & (snr_ap > cfg.apcorr_min_snr)
    def shape_fallback():
        from tgpcore.photometry.psf import fit_psf_shape

        idx = np.flatnonzero(F.is_clean(fl, F.BAD) & (snr_ap > 20))[:15]
        if len(idx) == 0:
            return None
        sh = fit_psf_shape(sub, err_img, mask, x[idx], y[idx], flux_ap[idx], fwhm)
        return (sh.alpha, sh.beta) if sh.n_stars else None

    # the growth curve sums areas too: its errors need the resampling factor
    err_sum = err_img * np.sqrt(max(cfg.sum_variance_factor, 1.0)) if err_img is not None \
        else None
    ac = curve_of_growth(data, err_sum, mask, x, y, cand, fwhm, r_ap, r_in, r_out,
                         flux_ref=np.where((fl & F.SATURATED) != 0, np.inf, np.abs(flux_ap)),
                         shape_fallback=shape_fallback)
    if ac.method.startswith("Moffat model"):
        fl |= F.NO_APCORR
    flux = flux_ap * ac.factor
    flux_err = err_ap * ac.factor
    psf_info: dict[str, Any] = {"mode": cfg.psf, "n_fitted": 0}
    use_psf = (is_blend if cfg.psf == "auto" else np.ones(len(x), bool)
               if cfg.psf == "all" else np.zeros(len(x), bool))
    use_psf &= (fl & (F.SATURATED | F.EDGE)) == 0
    if use_psf.any():
        flux, flux_err, fl, psf_info = _psf_path(sub, err_img, mask, x, y, flux, flux_err, fl,
                                                 use_psf, cand, fwhm, cfg, psf_info)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = flux / flux_err
        mag = np.where(flux > 0, -2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.nan)
        mag_err = np.where(flux > 0, np.hypot(MAG_PER_LN / snr, ac.mag_err), np.nan)
    table = Table({"id": np.arange(1, len(x) + 1), "x": x, "y": y, "flux": flux,
                   "flux_err": flux_err, "mag_inst": mag, "mag_err": mag_err, "snr": snr,
                   "flux_ap": flux_ap, "bkg": np.asarray(phot["bkg"], float),
                   "peak_snr": np.asarray(stars["peak_snr"], float),
                   "sharpness": np.asarray(stars["sharpness"], float),
                   "roundness1": np.asarray(stars["roundness1"], float), "flags": fl})
    summary = {"n_stars": len(table), "fwhm_px": float(fwhm), "n_fwhm_stars": n_fwhm,
               "r_ap_px": float(r_ap), "r_in_px": float(r_in), "r_out_px": float(r_out),
               "apcorr": ac.to_dict(), "psf": psf_info, "bkg_rms": bkg.median_rms,
               "bkg_median": float(np.median(bkg.background)),
               "n_filled_px": n_filled,
               "n_flagged": {name: int(((fl & bit) != 0).sum())
                             for bit, name in F.FLAG_NAMES.items()}}
    return table, summary


def _psf_path(sub, err_img, mask, x, y, flux, flux_err, fl, use_psf, cand, fwhm, cfg, info):
    """PSF fluxes for the ``use_psf`` stars, scaled to the aperture-corrected total flux
    scale with isolated reference stars measured both ways."""
    from scipy.spatial import cKDTree

    from tgpcore.photometry.psf import fit_psf_shape, psf_photometry

    iso = cand & ~use_psf
    ref_idx = np.flatnonzero(iso)[:30]
    shape = fit_psf_shape(sub, err_img, mask, x[ref_idx], y[ref_idx], flux[ref_idx], fwhm)
    sep = 2.5 * fwhm
    tree = cKDTree(np.column_stack([x, y]))
    near = set(np.flatnonzero(use_psf))
    for i in np.flatnonzero(use_psf):
        near.update(tree.query_ball_point([x[i], y[i]], sep))
    fit_idx = np.array(sorted(near | set(ref_idx)), int)
    res = psf_photometry(sub, err_img, mask, x[fit_idx], y[fit_idx], flux[fit_idx], shape,
                         group_sep_px=sep)
    pf = np.full(len(x), np.nan)
    pe = np.full(len(x), np.nan)
    pf[fit_idx] = res["flux"]
    pe[fit_idx] = np.asarray(res["flux_err"], float) * np.sqrt(max(cfg.sum_variance_factor, 1.0))
    ok_ref = ref_idx[np.isfinite(pf[ref_idx]) & (pf[ref_idx] > 0)]
    info.update({"alpha_px": shape.alpha, "beta": shape.beta, "n_shape_stars": shape.n_stars,
                 "n_reference": int(len(ok_ref))})
    if len(ok_ref) < 3:
        info["skipped"] = "fewer than 3 isolated stars to scale the PSF fluxes"
        return flux, flux_err, fl, info
    ratio = flux[ok_ref] / pf[ok_ref]
    norm = float(np.median(ratio))
    norm_err = float(1.2533 * np.std(ratio, ddof=1) / np.sqrt(len(ratio)) / norm) \
        if len(ratio) > 1 else 0.0
    take = use_psf & np.isfinite(pf) & (pf > 0)
    flux = flux.copy()
    flux_err = flux_err.copy()
    flux[take] = pf[take] * norm
    flux_err[take] = np.hypot(pe[take] * norm, flux[take] * norm_err)
    fl = fl.copy()
    fl[take] |= F.PSF
    info.update({"n_fitted": int(take.sum()), "psf_to_total": norm,
                 "psf_to_total_err": norm_err})
    return flux, flux_err, fl, info
