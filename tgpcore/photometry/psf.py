"""PSF photometry for crowded stars: a Moffat PSF fitted to the stack, photutils
``PSFPhotometry`` with a ``SourceGrouper`` so that blended stars are fitted together."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from astropy.table import Table


def moffat_alpha(fwhm_px: float, beta: float) -> float:
    """Moffat core width alpha (pixels) of a profile with this FWHM (pixels) and beta."""
    return fwhm_px / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


@dataclass
class MoffatShape:
    """The stack's PSF: Moffat ``alpha`` (px) and ``beta``, from ``n_stars`` stars."""

    alpha: float
    beta: float
    n_stars: int

    @property
    def fwhm_px(self) -> float:
        """Full width at half maximum (px)."""
        return float(2.0 * self.alpha * np.sqrt(2.0 ** (1.0 / self.beta) - 1.0))


def fit_psf_shape(data_sub: np.ndarray, error: np.ndarray | None, mask: np.ndarray | None,
                  x: np.ndarray, y: np.ndarray, flux: np.ndarray, fwhm_px: float,
                  max_stars: int = 30) -> MoffatShape:
    """Fit a Moffat (alpha, beta free) to bright isolated stars; medians over stars.

    Parameters
    ----------
    data_sub : ndarray
        Background-subtracted image.
    error, mask : ndarray or None
        Uncertainty and bad pixels.
    x, y, flux : array
        Candidate stars (bright and isolated) and initial fluxes.
    fwhm_px : float
        Measured FWHM (starting value and fitting box).
    max_stars : int
        Stars fitted.

    Returns
    -------
    MoffatShape
        With ``beta = 3`` and ``alpha`` from the FWHM when no star could be fitted.
    """
    from photutils.psf import MoffatPSF, PSFPhotometry

    beta0 = 3.0
    alpha0 = moffat_alpha(fwhm_px, beta0)
    n = min(len(x), max_stars)
    if n == 0:
        return MoffatShape(alpha0, beta0, 0)
    model = MoffatPSF(alpha=alpha0, beta=beta0)
    model.alpha.fixed = False
    model.beta.fixed = False
    model.beta.bounds = (1.1, 20.0)
    model.alpha.bounds = (0.2 * alpha0, 5.0 * alpha0)
    shape = 2 * int(np.ceil(2.0 * fwhm_px)) + 1
    init = Table({"x": np.asarray(x[:n], float), "y": np.asarray(y[:n], float),
                  "flux": np.asarray(flux[:n], float)})
    phot = PSFPhotometry(model, shape, aperture_radius=1.5 * fwhm_px)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = phot(data_sub, mask=mask, error=error, init_params=init)
        except Exception:  # noqa: BLE001
            return MoffatShape(alpha0, beta0, 0)
    a = np.asarray(res["alpha_fit"], float)
    b = np.asarray(res["beta_fit"], float)
    ok = np.isfinite(a) & np.isfinite(b) & (res["flags"] == 0)
    if not ok.any():
        return MoffatShape(alpha0, beta0, 0)
    return MoffatShape(float(np.median(a[ok])), float(np.median(b[ok])), int(ok.sum()))


def psf_photometry(data_sub: np.ndarray, error: np.ndarray | None, mask: np.ndarray | None,
                   x: np.ndarray, y: np.ndarray, flux0: np.ndarray, shape: MoffatShape,
                   group_sep_px: float | None = None, fit_radius_px: float | None = None
                   ) -> Table:
    """Fit the PSF to stars, blended ones simultaneously (photutils ``SourceGrouper``).

    Parameters
    ----------
    data_sub : ndarray
        Background-subtracted image (the stars' local background already removed).
    error, mask : ndarray or None
        Uncertainty and bad pixels.
    x, y, flux0 : array
        Initial positions and fluxes of the stars to fit (every star that may contribute
        light should be included, so that neighbours are fitted together).
    shape : MoffatShape
        The stack's PSF (alpha, beta fixed during the fit).
    group_sep_px : float, optional
        Stars closer than this are fitted together (default 2.5 FWHM).
    fit_radius_px : float, optional
        Half-size of the fitting box (default 1.5 FWHM).

    Returns
    -------
    astropy.table.Table
        ``x``, ``y``, ``flux``, ``flux_err``, ``group_id``, ``group_size``, ``qfit`` and
        ``psf_flags`` (photutils bits), in the order of the input.
    """
    from photutils.psf import MoffatPSF, PSFPhotometry, SourceGrouper

    fwhm = shape.fwhm_px
    sep = 2.5 * fwhm if group_sep_px is None else group_sep_px
    half = int(np.ceil(1.5 * fwhm if fit_radius_px is None else fit_radius_px))
    model = MoffatPSF(alpha=shape.alpha, beta=shape.beta)
    init = Table({"x": np.asarray(x, float), "y": np.asarray(y, float),
                  "flux": np.maximum(np.asarray(flux0, float), 1e-3)})
    phot = PSFPhotometry(model, 2 * half + 1, grouper=SourceGrouper(min_separation=sep),
                         aperture_radius=1.5 * fwhm, xy_bounds=(1.0, 1.0),
                         group_warning_threshold=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = phot(data_sub, mask=mask, error=error, init_params=init)
    res.sort("id")
    err = (np.asarray(res["flux_err"], float) if "flux_err" in res.colnames
           else np.full(len(res), np.nan))
    return Table({"x": np.asarray(res["x_fit"], float), "y": np.asarray(res["y_fit"], float),
                  "flux": np.asarray(res["flux_fit"], float), "flux_err": err,
                  "group_id": np.asarray(res["group_id"], int),
                  "group_size": np.asarray(res["group_size"], int),
                  "qfit": np.asarray(res["qfit"], float),
                  "psf_flags": np.asarray(res["flags"], int)})
