"""Curve-of-growth aperture corrections from isolated bright stars.

The aperture flux of a star is turned into its total flux by a factor measured on the stack
itself: the median growth of isolated bright stars from the photometry aperture ``r_ap`` to a
large radius ``r_max`` (with a background annulus further out), times a small model term for
the light beyond ``r_max`` and in the background annuli. The model is a Moffat profile,
``E(r) = 1 - (1 + r²/α²)^(1-β)`` enclosed, fitted to the measured growth curve.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tgpcore.photometry.aperture import annulus_background, aperture_fluxes
from tgpcore.photometry.psf import moffat_alpha

#: Error (mag) of a correction from a Moffat profile fitted to the stars' pixels (measured
#: on simulated frames and stacks: offsets within about 0.015 of the truth).
SHAPE_MODEL_ERR = 0.015


@dataclass
class ApertureCorrection:
    """Factor from an aperture flux (with its local annulus background) to the total flux.

    ``factor`` multiplies the aperture flux; ``mag = -2.5 log10(factor)`` is added to the
    aperture magnitude, ``mag_err`` is its uncertainty (to be added in quadrature to every
    star of the stack). ``method`` says how it was obtained.
    """

    factor: float
    mag: float
    mag_err: float
    n_stars: int
    r_ap: float
    r_max: float
    method: str
    radii: list[float] = field(default_factory=list)
    growth: list[float] = field(default_factory=list)
    moffat_alpha: float | None = None
    moffat_beta: float | None = None
    tail_fraction: float | None = None
    model_factor: float | None = None

    def to_dict(self) -> dict:
        """Plain data."""
        return asdict(self)


def moffat_enclosed(r, alpha: float, beta: float) -> np.ndarray:
    """Fraction of a Moffat profile's flux within radius ``r``."""
    return 1.0 - (1.0 + (np.asarray(r, float) / alpha) ** 2) ** (1.0 - beta)


def _measured(r, alpha, beta, r1, r2):
    """Enclosed flux less the annulus background (the profile's mean level in [r1, r2))."""
    s = (moffat_enclosed(r2, alpha, beta) - moffat_enclosed(r1, alpha, beta)) \
        / (np.pi * (r2**2 - r1**2))
    return moffat_enclosed(r, alpha, beta) - np.pi * np.asarray(r, float) ** 2 * s


def _model_growth(radii, a, b, r_ap, r1, r2):
    return _measured(radii, a, b, r1, r2) / _measured(r_ap, a, b, r1, r2)


def _fit_moffat(radii, growth, gerr, r_ap, r1, r2, r_in, r_out, fwhm
                ) -> tuple[float, float, float, float] | None:
    """Fit (alpha, beta) to the growth curve; return alpha, beta, the total-flux factor of
    an aperture measured with the photometry annulus, and that factor's relative error."""
    from scipy.optimize import least_squares

    w = 1.0 / gerr

    def resid(p):
        a, b = np.exp(p[0]), 1.0 + np.exp(p[1])
        return (_model_growth(radii, a, b, r_ap, r1, r2) - growth) * w

    def factor(p):
        a, b = np.exp(p[0]), 1.0 + np.exp(p[1])
        return 1.0 / _measured(r_ap, a, b, r_in, r_out)

    a0 = moffat_alpha(fwhm, 3.0)
    try:
        res = least_squares(resid, [np.log(a0), np.log(2.0)], method="lm")
    except Exception:  # noqa: BLE001
        return None
    a, b = float(np.exp(res.x[0])), float(1.0 + np.exp(res.x[1]))
    if not (res.success and np.isfinite(a) and 1.2 < b < 50 and 0.1 * fwhm < a < 10 * fwhm):
        return None
    dof = max(len(radii) - 1 - 2, 1)
    chi2 = float(np.sum(res.fun**2)) / dof
    try:
        cov = np.linalg.inv(res.jac.T @ res.jac) * max(chi2, 1.0)
    except np.linalg.LinAlgError:
        return None
    f0 = factor(res.x)
    grad = np.array([(factor(res.x + dp) - f0) / 1e-6 for dp in np.eye(2) * 1e-6])
    rel = float(np.sqrt(max(grad @ cov @ grad, 0.0)) / f0)
    return a, b, float(f0), rel


def curve_of_growth(data: np.ndarray, error: np.ndarray | None, mask: np.ndarray | None,
                    x: np.ndarray, y: np.ndarray, candidates: np.ndarray, fwhm_px: float,
                    r_ap: float, r_in: float, r_out: float, r_max: float | None = None,
                    n_radii: int = 10, min_stars: int = 3, max_stars: int = 60,
                    flux_ref: np.ndarray | None = None, shape_fallback: Any = None,
                    check_sigma: float | None = 3.0) -> ApertureCorrection:
    """Measure the aperture correction of a stack.

    Parameters
    ----------
    data, error, mask : ndarray
        Image, its uncertainty and bad-pixel mask.
    x, y : array
        All detected stars (the isolation test uses every one of them).
    candidates : array of bool
        Stars eligible for the curve of growth (bright, unflagged).
    fwhm_px : float
        FWHM of the stack.
    r_ap : float
        Photometry aperture radius.
    r_in, r_out : float
        The annulus used by the photometry (its wing light is accounted for).
    r_max : float, optional
        Largest radius of the growth curve (default 4 FWHM); the annulus of the growth curve
        is ``r_max + (1 .. 2.5) FWHM``.
    n_radii, min_stars, max_stars : int
        Radii sampled; fewest isolated stars for an empirical correction; most used.
    flux_ref : array, optional
        Fluxes of all stars: a star counts as isolated when no neighbour brighter than 0.5 %
        of it lies within the growth curve's outer radius (default: no neighbour at all).
    shape_fallback : callable, optional
        Returns a Moffat ``(alpha, beta)`` fitted to the image's stars, used when too few
        isolated stars are available for a growth curve, and as a check of the growth
        curve: when the two disagree by more than ``check_sigma`` times their combined error
        (None: no check), the growth curve is taken to be spoilt by blends and the model is
        used.

    Returns
    -------
    ApertureCorrection
        ``method`` is ``'curve of growth (n stars) + Moffat tail'`` when measured, or
        ``'Moffat model fitted to the stars (...)'`` (with a 0.015 mag error) otherwise.
    """
    from tgpcore.photometry.detect import nearest_neighbour_px

    r_max = float(4.0 * fwhm_px if r_max is None else r_max)
    r1, r2 = r_max + 1.0 * fwhm_px, r_max + 2.5 * fwhm_px
    x, y = np.asarray(x, float), np.asarray(y, float)
    ny, nx = np.shape(data)
    f_ref = np.asarray(flux_ref, float) if flux_ref is not None else None
    if f_ref is not None and len(x) > 1:
        # isolated: no neighbour within r2 brighter than 0.5 % of the star
        from scipy.spatial import cKDTree

        iso = np.ones(len(x), bool)
        tree = cKDTree(np.column_stack([x, y]))
        for i, j in tree.query_pairs(r2, output_type="ndarray"):
            if f_ref[j] > 0.005 * f_ref[i]:
                iso[i] = False
            if f_ref[i] > 0.005 * f_ref[j]:
                iso[j] = False
    else:
        iso = nearest_neighbour_px(x, y) > r2
    ok = np.asarray(candidates, bool) & iso & (x > r_max) & (x < nx - 1 - r_max) \
        & (y > r_max) & (y < ny - 1 - r_max)
    idx = np.flatnonzero(ok)[:max_stars]
    radii = np.linspace(r_ap, r_max, n_radii)
    if len(idx) >= min_stars:
        flux, flux_err, area = aperture_fluxes(data, error, mask, x[idx], y[idx], radii)
        bkg, bstd, bn, frac = annulus_background(data, mask, x[idx], y[idx], r1, r2)
        bkg_err = 1.2533 * bstd / np.sqrt(np.maximum(bn, 1))
        if error is None:
            flux_err = np.sqrt(area) * bstd[:, None]
        full = np.pi * radii**2
        # Masked pixels (cosmic-ray tracks, bad columns) outside the core would otherwise
        # exclude most bright stars from a frame's growth curve: each ring between two radii
        # is counted at its mean surface brightness over its whole area instead (the profile
        # is round). The core (within r_ap) must be whole, each ring at least half there.
        d_flux = np.diff(flux, axis=1, prepend=0.0)
        d_area = np.diff(area, axis=1, prepend=0.0)
        d_full = np.diff(full, prepend=0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(d_area > 0, d_full[None, :] / d_area, np.nan)
        good = (area[:, 0] > 0.999 * full[0]) & np.all(d_area > 0.5 * d_full[None, :], axis=1) \
            & (frac > 0.6) & np.isfinite(bkg)
        net = np.cumsum((d_flux - bkg[:, None] * d_area) * scale, axis=1)
        flux_err = np.sqrt(np.cumsum((np.diff(flux_err**2, axis=1, prepend=0.0)
                                      * scale**2), axis=1))
        area = np.broadcast_to(full, area.shape)
        good &= np.isfinite(net).all(axis=1) & (net[:, 0] > 0)
        if good.sum() >= min_stars:
            net, flux_err = net[good], flux_err[good]
            net_err = np.hypot(flux_err, area[good] * bkg_err[good, None])
            g = net / net[:, :1]
            # error of each star's growth, relative to its flux at r_ap
            ge = np.hypot(net_err, net_err[:, :1] * g) / net[:, :1]
            ge[:, 0] = np.inf
            wts = 1.0 / np.maximum(ge, 1e-6) ** 2
            med = np.median(g, axis=0)
            sc = 1.4826 * np.median(np.abs(g - med), axis=0)
            wts[np.abs(g - med) > 5 * np.maximum(np.hypot(sc, ge), 1e-6)] = 0.0
            sw = wts.sum(0)
            growth = np.where(sw > 0, (wts * g).sum(0) / np.where(sw > 0, sw, 1), med)
            gerr = np.where(sw > 0, 1.0 / np.sqrt(np.where(sw > 0, sw, 1)), 1.0)
            growth[0], gerr[0] = 1.0, 1e-4
            fit = _fit_moffat(radii[1:], growth[1:], gerr[1:], r_ap, r1, r2, r_in, r_out,
                              fwhm_px)
            n_used = int(good.sum())
            if fit is not None:
                a, b, model_factor, model_rel = fit
                # Empirical to r_max, the model only beyond: per star, the growth to r_max
                # times the ratio of its r_ap flux with the growth curve's sky to that with
                # the photometry's sky (its own wing in the photometry annulus), over the
                # model's fraction of the total within r_max.
                gi = idx[good]
                bkg_p, _, _, _ = annulus_background(data, mask, x[gi], y[gi], r_in, r_out)
                net_p = flux[good][:, 0] - bkg_p * area[good][:, 0]
                tail = float(_measured(r_max, a, b, r1, r2))
                fi = net[:, -1] / net_p / tail
                wi = np.where(np.isfinite(fi) & (net_p > 0), wts[:, -1], 0.0)
                if wi.sum() > 0:
                    factor = float(np.sum(wi * fi) / wi.sum())
                    # weights are 1/error^2 of each star's growth: the mean's error, scaled
                    # by the scatter when the stars disagree more than their errors say
                    n_w = int(np.count_nonzero(wi))
                    chi2 = float(np.sum(wi * (fi - factor) ** 2)) / max(n_w - 1, 1)
                    stat = float(np.sqrt(max(chi2, 1.0) / wi.sum()))
                    # the tail beyond r_max: a tenth of it as its uncertainty
                    rel = float(np.hypot(stat / factor, 0.1 * (1.0 / tail - 1.0)))
                    method = (f"curve of growth ({n_used} stars) to {r_max / fwhm_px:.1f} FWHM, "
                              "Moffat tail beyond")
                else:
                    factor, rel = model_factor, model_rel
                    method = f"curve of growth ({n_used} stars) fitted by a Moffat profile"
                shape = shape_fallback() if (shape_fallback is not None
                                             and check_sigma is not None) else None
                if shape is not None:
                    # A check against the profile fitted to the stars' pixels: an undetected
                    # neighbour in a growth curve's apertures (a blend), which a few stars
                    # cannot outvote, shows as a disagreement far beyond both errors.
                    mf = float(1.0 / _measured(r_ap, shape[0], shape[1], r_in, r_out))
                    dmag = 2.5 * np.log10(factor / mf)
                    if abs(dmag) > check_sigma * np.hypot(1.0857 * rel, SHAPE_MODEL_ERR):
                        return _model_correction(
                            shape, r_ap, r_in, r_out, r_max, fwhm_px, int(len(idx)),
                            f"Moffat model fitted to the stars (the curve of growth of "
                            f"{n_used} stars disagreed by {dmag:+.3f} mag)")
                return ApertureCorrection(
                    factor=factor, mag=float(-2.5 * np.log10(factor)),
                    mag_err=float(1.0857 * rel), n_stars=n_used, r_ap=float(r_ap), r_max=r_max,
                    method=method,
                    radii=[float(r) for r in radii], growth=[float(v) for v in growth],
                    moffat_alpha=a, moffat_beta=b,
                    tail_fraction=float(1.0 - moffat_enclosed(r_max, a, b)),
                    model_factor=float(model_factor))
            factor = float(growth[-1])
            return ApertureCorrection(
                factor=factor, mag=float(-2.5 * np.log10(factor)),
                mag_err=float(1.0857 * gerr[-1] / factor), n_stars=n_used, r_ap=float(r_ap),
                r_max=r_max, method=f"curve of growth ({n_used} stars) to r_max, no tail",
                radii=[float(r) for r in radii], growth=[float(v) for v in growth])
    # Too few isolated stars: a Moffat profile fitted to the stars' pixels (or beta = 3 at the
    # measured FWHM without one).
    shape = shape_fallback() if shape_fallback is not None else None
    return _model_correction(shape, r_ap, r_in, r_out, r_max, fwhm_px, int(len(idx)),
                             "Moffat model fitted to the stars (too few isolated stars)")


def _model_correction(shape, r_ap, r_in, r_out, r_max, fwhm_px, n_stars, method
                      ) -> ApertureCorrection:
    """The correction of a Moffat ``shape`` = (alpha, beta) fitted to the stars' pixels
    (error SHAPE_MODEL_ERR), or of beta = 3 at the measured FWHM without one (0.04 mag)."""
    if shape is not None:
        a, b = shape
        err = SHAPE_MODEL_ERR
    else:
        b = 3.0
        a = moffat_alpha(fwhm_px, b)
        method, err = "Moffat model, beta = 3 (too few isolated stars)", 0.04
    factor = float(1.0 / _measured(r_ap, a, b, r_in, r_out))
    return ApertureCorrection(factor=factor, mag=float(-2.5 * np.log10(factor)), mag_err=err,
                              n_stars=n_stars, r_ap=float(r_ap), r_max=r_max,
                              method=method, moffat_alpha=float(a), moffat_beta=float(b),
                              tail_fraction=float(1.0 - moffat_enclosed(r_max, a, b)))
