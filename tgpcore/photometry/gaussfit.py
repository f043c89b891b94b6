"""FWHM of many stars at once: a circular, pixel-integrated Gaussian fitted to every star's
box in one batched Levenberg-Marquardt iteration (no Python loop over stars).

The model and the fitting boxes are photutils' ``fit_fwhm`` (``CircularGaussianPRF``: flux,
x_0, y_0 and FWHM free; unweighted least squares; a ``fit_shape`` box placed as
``photutils.utils.overlap_slices`` places it; the flux starts at the box's sum), which stays
the test oracle (tests/test_photometry_gaussfit.py).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

_S2 = np.sqrt(2.0)
_SQPI = np.sqrt(np.pi)
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def _axis(u: np.ndarray, sig: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-integrated unit Gaussian along one axis at offsets ``u`` (pixel centre minus
    star centre), its derivative in the centre and in sigma."""
    a = (u + 0.5) / (_S2 * sig)
    b = (u - 0.5) / (_S2 * sig)
    ea, eb = np.exp(-a * a), np.exp(-b * b)
    e = 0.5 * (erf(a) - erf(b))
    d_c = (eb - ea) / (_S2 * _SQPI * sig)
    d_s = (b * eb - a * ea) / (_SQPI * sig)
    return e, d_c, d_s


def fit_gaussian_fwhm(data: np.ndarray, x: np.ndarray, y: np.ndarray, fit_shape: int,
                      fwhm: float, max_iter: int = 100, rtol: float = 1e-8
                      ) -> np.ndarray:
    """FWHM of a circular pixel-integrated Gaussian fitted to each star.

    Parameters
    ----------
    data : ndarray
        Background-subtracted image.
    x, y : array
        0-based first positions; every box must lie on the image.
    fit_shape : int
        Side of the (odd) fitting box.
    fwhm : float
        First FWHM.
    max_iter : int
        Levenberg-Marquardt iterations at most.
    rtol : float
        A star stops once its relative parameter step is below this.

    Returns
    -------
    ndarray
        The fitted FWHM per star (NaN where the fit failed).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n == 0:
        return np.zeros(0)
    s = int(fit_shape)
    x0 = np.ceil(x - s / 2.0).astype(np.intp)  # photutils.utils.overlap_slices' placement
    y0 = np.ceil(y - s / 2.0).astype(np.intp)
    ny, nx = data.shape
    if (x0 < 0).any() or (y0 < 0).any() or (x0 + s > nx).any() or (y0 + s > ny).any():
        raise ValueError("a fitting box is off the image")
    off = np.arange(s)
    px = (x0[:, None] + off[None, :]).astype(float)  # (n, s) pixel centres
    py = (y0[:, None] + off[None, :]).astype(float)
    d = np.asarray(data, float)[py.astype(np.intp)[:, :, None], px.astype(np.intp)[:, None, :]]
    d = d.reshape(n, s * s)
    p = np.column_stack([d.sum(1), x, y, np.full(n, float(fwhm))])

    def model(p, idx):
        sig = p[:, 3] / FWHM_PER_SIGMA
        ex, dxc, dxs = _axis(px[idx] - p[:, 1:2], sig[:, None])
        ey, dyc, dys = _axis(py[idx] - p[:, 2:3], sig[:, None])
        f = p[:, 0][:, None, None]
        m = f * ey[:, :, None] * ex[:, None, :]
        jac = np.stack([ey[:, :, None] * ex[:, None, :],
                        f * ey[:, :, None] * dxc[:, None, :],
                        f * dyc[:, :, None] * ex[:, None, :],
                        f * (dys[:, :, None] * ex[:, None, :] + ey[:, :, None] * dxs[:, None, :])
                        / FWHM_PER_SIGMA], axis=-1)
        return m.reshape(len(p), -1), jac.reshape(len(p), s * s, 4)

    m, jac = model(p, np.arange(n))
    r = d - m
    cost = (r * r).sum(1)
    lam = np.full(n, 1e-3)
    active = np.ones(n, bool)
    eye = np.eye(4)
    for _ in range(max_iter):
        k = np.flatnonzero(active)
        if len(k) == 0:
            break
        jk, rk = jac[k], r[k]
        a = np.einsum("npi,npj->nij", jk, jk)
        g = np.einsum("npi,np->ni", jk, rk)
        diag = np.einsum("nii->ni", a)
        lhs = a + lam[k][:, None, None] * diag[:, :, None] * eye[None]
        try:
            step = np.linalg.solve(lhs, g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.stack([np.linalg.lstsq(m_, g_, rcond=None)[0]
                             for m_, g_ in zip(lhs, g, strict=True)])
        trial = p[k] + step
        trial[:, 3] = np.abs(trial[:, 3])
        mt, jt = model(trial, k)
        rt = d[k] - mt
        ct = (rt * rt).sum(1)
        better = np.isfinite(ct) & (ct < cost[k])
        kb = k[better]
        p[kb], r[kb], cost[kb], jac[kb] = trial[better], rt[better], ct[better], jt[better]
        lam[kb] = np.maximum(lam[kb] / 10.0, 1e-12)
        lam[k[~better]] *= 10.0
        small = np.all(np.abs(step) <= rtol * (np.abs(p[k]) + rtol), axis=1)
        active[k[(better & small) | (lam[k] > 1e12)]] = False
    out = np.abs(p[:, 3])
    out[~np.isfinite(out)] = np.nan
    return out

