"""A TAN-SIP plate solution fitted to matched stars, its distortion order chosen by
cross-validation.

On the tangent plane about a point near the field centre, the standard coordinates of a
TAN-SIP WCS are polynomials of the pixel offsets ``(u, v)`` from CRPIX::

    (xi, eta) = CD @ (u + A(u, v), v + B(u, v))

so for a fixed tangent point the fit is linear least squares: degree 1 is a plain TAN (CD
only), degree k >= 2 adds SIP terms up to that degree. The constant term moves the tangent
point (CRVAL), which is iterated until it vanishes.

The degree is chosen by leave-one-out cross-validation (exact for least squares: the residual
over ``1 - h``, ``h`` the leverage), among the degrees the number of stars supports: the
lowest degree within one standard error of the best, so that a higher degree must earn its
terms (they are least constrained in the corners, where stars are fewest). Stars are weighted
by the scatter of stars of similar flux, and outliers (blends, mismatches) are clipped against
it before each choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy.wcs import WCS, Sip

from tgpcore.gnomonic import from_tangent, to_tangent

#: Stars needed per polynomial coefficient (per axis) before a degree is considered.
MIN_STARS_PER_TERM = 2.5
#: Rayleigh median -> per-axis sigma.
_RAYLEIGH_MEDIAN = float(np.sqrt(2.0 * np.log(2.0)))


def terms(degree: int) -> list[tuple[int, int]]:
    """Monomials ``u^p v^q`` with ``p + q <= degree``, by increasing degree."""
    return [(p, d - p) for d in range(degree + 1) for p in range(d, -1, -1)]


def _design(u: np.ndarray, v: np.ndarray, degree: int, norm: float) -> np.ndarray:
    un, vn = u / norm, v / norm
    return np.column_stack([un**p * vn**q for p, q in terms(degree)])


def loo_errors(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Leave-one-out squared residuals of the (weighted) least-squares fit ``y ~ x @ coef``.

    Exact for least squares: each residual divided by ``1 - leverage``. ``y`` may have
    several columns (summed per row); with weights ``w`` (1/sigma per row) the residuals are
    in units of sigma.
    """
    if w is not None:
        x, y = x * w[:, None], y * w[:, None]
    q, r = np.linalg.qr(x)
    h = np.sum(q**2, axis=1)
    coef = np.linalg.solve(r, q.T @ y)
    e = (y - x @ coef) / np.clip(1.0 - h, 1e-6, None)[:, None]
    return np.sum(e**2, axis=1)


def loo_rms(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Leave-one-out RMS residual (see :func:`loo_errors`)."""
    return float(np.sqrt(np.mean(loo_errors(x, y, w))))


def choose_degree(errors: dict[int, np.ndarray]) -> int:
    """The lowest degree whose leave-one-out mean squared error is within one standard error
    of the smallest (the "one-standard-error rule": a higher degree must earn its terms)."""
    mse = {k: float(np.mean(e)) for k, e in errors.items()}
    kmin = min(mse, key=mse.get)
    e = errors[kmin]
    se = float(np.std(e) / np.sqrt(len(e))) if len(e) > 1 else 0.0
    return min(k for k in mse if mse[k] <= mse[kmin] + se)


def local_sigma(r: np.ndarray, used: np.ndarray, flux: np.ndarray | None,
                n_min: int = 15) -> np.ndarray:
    """Per-axis scatter expected for each star: the robust scatter of the kept stars of
    similar flux (a running median of residual lengths over flux rank), or one value for all
    without fluxes."""
    if flux is None or used.sum() < 2 * n_min:
        return np.full(len(r), max(np.median(r[used]) / _RAYLEIGH_MEDIAN, 1e-6))
    f = np.nan_to_num(np.asarray(flux, float), nan=0.0)
    order_used = np.nonzero(used)[0][np.argsort(-f[used], kind="stable")]
    fr = f[order_used]
    k = max(n_min, int(used.sum()) // 8)
    rank = np.searchsorted(-fr, -f, side="left")  # rank of every star among the kept
    out = np.empty(len(r))
    for i, p in enumerate(rank):
        lo = int(np.clip(p - k // 2, 0, len(fr) - k))
        out[i] = np.median(r[order_used[lo:lo + k]]) / _RAYLEIGH_MEDIAN
    return np.maximum(out, 1e-6)


def supported_degrees(n: int, max_degree: int = 5,
                      per_term: float = MIN_STARS_PER_TERM) -> list[int]:
    """Degrees (1 = TAN) that ``n`` stars support: at least ``per_term`` stars per term."""
    return [k for k in range(1, max_degree + 1) if n >= per_term * len(terms(k))]


@dataclass
class PlateFit:
    """A fitted plate solution.

    ``degree`` 1 is a linear TAN; 2 or more a TAN-SIP of that degree. ``used`` flags the
    stars kept by the clipping; ``resid_arcsec`` is catalogue minus model, (east, north) in
    arcsec, for every star given; ``rms_arcsec`` the RMS of the kept stars' residual lengths;
    ``cv_arcsec`` the leave-one-out RMS of each degree tried (on the kept stars).
    """

    wcs: WCS
    degree: int
    used: np.ndarray
    resid_arcsec: np.ndarray
    rms_arcsec: float
    cv_arcsec: dict[int, float] = field(default_factory=dict)
    coef: np.ndarray | None = None
    crpix: tuple[float, float] = (0.0, 0.0)
    norm: float = 1.0

    @property
    def sip_degree(self) -> int | None:
        """SIP degree, or None for a linear TAN."""
        return self.degree if self.degree >= 2 else None

    def standard(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standard coordinates (deg) about CRVAL of 0-based pixels, through the model."""
        u = np.asarray(xy, float)[:, 0] + 1.0 - self.crpix[0]
        v = np.asarray(xy, float)[:, 1] + 1.0 - self.crpix[1]
        m = _design(u, v, self.degree, self.norm) @ self.coef
        return m[:, 0], m[:, 1]


def _fit_degree(u: np.ndarray, v: np.ndarray, ra: np.ndarray, dec: np.ndarray, degree: int,
                ra0: float, dec0: float, norm: float, w: np.ndarray | None = None
                ) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Coefficients (normalised monomials -> xi, eta in deg), weighted by ``w`` (1/sigma),
    with the tangent point moved until the constant term vanishes; returns coef, ra0, dec0
    and the residuals (deg)."""
    x = _design(u, v, degree, norm)
    ww = np.ones(len(u)) if w is None else w
    for _ in range(5):
        xi, eta = to_tangent(ra0, dec0, ra, dec)
        y = np.column_stack([xi, eta])
        coef, *_ = np.linalg.lstsq(x * ww[:, None], y * ww[:, None], rcond=None)
        c0 = coef[0]
        if np.hypot(*c0) < 1e-11:  # 0.04 micro-arcsec
            break
        ra0, dec0 = (float(t) for t in from_tangent(ra0, dec0, c0[0], c0[1]))
    return coef, ra0, dec0, y - x @ coef


def _sip_inverse(a: np.ndarray, b: np.ndarray, degree: int, nx: int, ny: int,
                 crpix: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """AP, BP of degree ``degree + 1`` (terms of degree >= 2) fitted on a grid over the
    image (with a 5 % margin)."""
    g = np.linspace(-0.05, 1.05, 30)
    gx, gy = np.meshgrid(g * (nx - 1) + 1.0 - crpix[0], g * (ny - 1) + 1.0 - crpix[1])
    u, v = gx.ravel(), gy.ravel()
    du = sum(a[p, q] * u**p * v**q for p in range(degree + 1) for q in range(degree + 1 - p))
    dv = sum(b[p, q] * u**p * v**q for p in range(degree + 1) for q in range(degree + 1 - p))
    uu, vv = u + du, v + dv
    inv = degree + 1
    tt = [(p, q) for p, q in terms(inv) if p + q >= 2]
    norm = max(nx, ny) / 2.0
    x = np.column_stack([(uu / norm) ** p * (vv / norm) ** q for p, q in tt])
    coef, *_ = np.linalg.lstsq(x, np.column_stack([u - uu, v - vv]), rcond=None)
    ap, bp = np.zeros((inv + 1, inv + 1)), np.zeros((inv + 1, inv + 1))
    for (p, q), c in zip(tt, coef, strict=True):
        ap[p, q] = c[0] / norm ** (p + q)
        bp[p, q] = c[1] / norm ** (p + q)
    return ap, bp


def _make_wcs(coef: np.ndarray, degree: int, ra0: float, dec0: float,
              crpix: tuple[float, float], norm: float, shape: tuple[int, int]) -> WCS:
    tt = terms(degree)
    lin = {pq: coef[k] / norm ** sum(pq) for k, pq in enumerate(tt)}
    cd = np.column_stack([lin[(1, 0)], lin[(0, 1)]])
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"] if degree >= 2 else ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = list(crpix)
    w.wcs.cd = cd
    w.wcs.radesys = "ICRS"
    if degree >= 2:
        cdi = np.linalg.inv(cd)
        a, b = np.zeros((degree + 1, degree + 1)), np.zeros((degree + 1, degree + 1))
        for pq, c in lin.items():
            if sum(pq) >= 2:
                a[pq], b[pq] = cdi @ c
        ap, bp = _sip_inverse(a, b, degree, shape[1], shape[0], crpix)
        w.sip = Sip(a, b, ap, bp, w.wcs.crpix)
    w.wcs.set()
    return w


def fit_plate(xy: np.ndarray, ra: np.ndarray, dec: np.ndarray, shape: tuple[int, int], *,
              degree: int | None = None, max_degree: int = 5, clip: float = 3.5,
              per_term: float = MIN_STARS_PER_TERM, flux: np.ndarray | None = None
              ) -> PlateFit:
    """Fit a TAN(-SIP) WCS to matched stars, choosing the distortion degree.

    Parameters
    ----------
    xy : ndarray (n, 2)
        Pixel positions (0-based) of the matched detections.
    ra, dec : ndarray
        Their catalogue positions (deg, at the image's epoch).
    shape : (ny, nx)
        Image shape (CRPIX is its centre).
    degree : int, optional
        Use this degree (1 = TAN), or the highest below it that the stars support;
        default: chosen by leave-one-out cross-validation (:func:`choose_degree`) among
        the degrees the stars support (:func:`supported_degrees`).
    max_degree : int
        Highest degree tried.
    clip : float
        Stars whose residual exceeds ``clip`` robust sigmas (per axis, from the median
        residual length of stars of similar flux) are left out of the fit, iteratively.
    per_term : float
        Stars needed per coefficient for a degree to be tried.
    flux : ndarray, optional
        The detections' fluxes. Faint stars' centroids scatter more: with fluxes each star
        is weighted by 1/sigma^2 and clipped against the scatter of stars of similar flux
        (:func:`local_sigma`); without, all stars count alike.

    Returns
    -------
    PlateFit

    Raises
    ------
    ValueError
        With fewer than 3 stars.
    """
    xy = np.asarray(xy, float)
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    n = len(xy)
    if n < 3:
        raise ValueError(f"a plate solution needs at least 3 stars, got {n}")
    ny, nx = shape
    crpix = ((nx + 1) / 2.0, (ny + 1) / 2.0)
    norm = 0.5 * float(np.hypot(nx, ny))
    u, v = xy[:, 0] + 1.0 - crpix[0], xy[:, 1] + 1.0 - crpix[1]
    # a tangent point near the field centre: the stars' mean position
    ra0 = float(np.degrees(np.arctan2(np.mean(np.sin(np.radians(ra))),
                                      np.mean(np.cos(np.radians(ra))))) % 360.0)
    dec0 = float(np.mean(dec))
    used = np.ones(n, bool)
    w = np.ones(n)  # 1/sigma, relative
    chosen, cv = 1, {}
    for _ in range(8):
        if degree is not None:  # that degree, or the highest below it the stars support
            cands = [max(supported_degrees(int(used.sum()), degree, per_term) or [1])]
        else:
            cands = supported_degrees(int(used.sum()), max_degree, per_term) or [1]
        xi, eta = to_tangent(ra0, dec0, ra[used], dec[used])
        y = np.column_stack([xi, eta])
        scale = float(np.sqrt(np.mean(w[used] ** -2)))  # CV in arcsec at the mean weight
        errs = {k: loo_errors(_design(u[used], v[used], k, norm), y, w[used]) for k in cands}
        cv = {k: float(np.sqrt(np.mean(e))) * scale * 3600.0 for k, e in errs.items()}
        chosen = choose_degree(errs)
        coef, ra0, dec0, _ = _fit_degree(u[used], v[used], ra[used], dec[used], chosen, ra0,
                                         dec0, norm, w[used])
        xi_all, eta_all = to_tangent(ra0, dec0, ra, dec)
        model = _design(u, v, chosen, norm) @ coef
        r = np.hypot(xi_all - model[:, 0], eta_all - model[:, 1]) * 3600.0
        sigma = local_sigma(r, used, flux)
        w = 1.0 / sigma
        new = r <= np.maximum(clip * sigma, 1e-4)
        if new.sum() < 3 or np.array_equal(new, used):
            break
        used = new
    coef, ra0, dec0, _ = _fit_degree(u[used], v[used], ra[used], dec[used], chosen, ra0, dec0,
                                     norm, w[used])
    wcs = _make_wcs(coef, chosen, ra0, dec0, crpix, norm, shape)
    xi_all, eta_all = to_tangent(ra0, dec0, ra, dec)
    model = _design(u, v, chosen, norm) @ coef
    resid = np.column_stack([xi_all - model[:, 0], eta_all - model[:, 1]]) * 3600.0
    rms = float(np.sqrt(np.mean(np.sum(resid[used] ** 2, axis=1))))
    return PlateFit(wcs=wcs, degree=chosen, used=used, resid_arcsec=resid, rms_arcsec=rms,
                    cv_arcsec={k: round(float(s), 5) for k, s in cv.items()}, coef=coef,
                    crpix=crpix, norm=norm)
