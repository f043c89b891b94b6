"""The cluster's radial profile: a King (1962) profile plus a uniform background, and r50.

The members' positions (tangent-plane offsets in arcmin) are fitted by maximum likelihood,
unbinned, over the cone (a disc of radius ``R``): the density at distance r from the King
centre is ``f K(r) / I + (1 - f) / (pi R^2)`` with King's
``K(r) = [1/sqrt(1 + (r/rc)^2) - 1/sqrt(1 + (rt/rc)^2)]^2`` (zero beyond rt) and I its integral
over the cone, from the analytic cumulative ``N_K`` (King 1962, eq. 18). The five parameters
are the centre, rc, rt and the cluster fraction f. Uncertainties of every quantity (centre, rc,
rt, background density, r50) are standard deviations over bootstrap resamples of the members.
r50 is the radius holding half of the King profile's stars (within rt); ``r50_members`` the
radius holding half of the background-subtracted members inside the cone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import brentq, minimize

KING_METHOD = ("unbinned maximum-likelihood King (1962) profile + uniform background over "
               "the cone (centre, rc, rt, cluster fraction fitted); errors from {n} bootstrap "
               "resamples of the members")


def king_cumulative(r, rc: float, rt: float) -> np.ndarray:
    """Stars within projected radius r of a King (1962) profile with k = 1 (units of rc²).

    ``N(r) = pi rc^2 [ln(1 + x^2) - 4 (sqrt(1 + x^2) - 1) / sqrt(1 + xt^2) + x^2 / (1 + xt^2)]``
    with ``x = min(r, rt) / rc``, ``xt = rt / rc``.
    """
    x2 = (np.minimum(np.asarray(r, float), rt) / rc) ** 2
    xt2 = (rt / rc) ** 2
    return np.pi * rc**2 * (np.log1p(x2) - 4.0 * (np.sqrt(1.0 + x2) - 1.0) / np.sqrt(1.0 + xt2)
                            + x2 / (1.0 + xt2))


def king_density(r, rc: float, rt: float) -> np.ndarray:
    """King (1962) surface density with k = 1 (zero beyond rt)."""
    r = np.asarray(r, float)
    s = 1.0 / np.sqrt(1.0 + (r / rc) ** 2) - 1.0 / np.sqrt(1.0 + (rt / rc) ** 2)
    return np.where(r < rt, s * s, 0.0)


def king_r50(rc: float, rt: float) -> float:
    """Radius holding half of a King profile's stars."""
    half = 0.5 * king_cumulative(rt, rc, rt)
    return float(brentq(lambda r: king_cumulative(r, rc, rt) - half, 1e-6 * rc, rt))


def members_r50(r: np.ndarray, background: float, radius: float) -> float:
    """Radius holding half of the background-subtracted stars within ``radius``.

    Parameters
    ----------
    r : ndarray
        Distances of the members from the centre (arcmin).
    background : float
        Background density (per arcmin²).
    radius : float
        Outer radius considered.
    """
    rs = np.sort(r[r < radius])
    if len(rs) == 0:
        return float("nan")
    excess = np.arange(1, len(rs) + 1) - background * np.pi * rs**2
    half = 0.5 * (len(rs) - background * np.pi * radius**2)
    k = int(np.searchsorted(np.maximum.accumulate(excess), half))
    return float(rs[min(k, len(rs) - 1)])


def _half_range(values: np.ndarray) -> float:
    lo, hi = np.nanpercentile(values, [16, 84])
    return float(0.5 * (hi - lo))


@dataclass
class KingFit:
    """A fitted King profile (radii in arcmin, background in stars per arcmin²).

    Every quantity has its ``*_err``: half the 16-84 % range of the bootstrap values (robust
    to the long tail of rt when the cone does not reach it). ``rt_beyond_cone`` is True when
    rt exceeds the cone; rt (and the model r50, which depends on it) is then an extrapolation
    and ``rt_lower_limit_arcmin`` (the 16th percentile) is the useful statement.
    ``r50_members_arcmin`` is model-free: the radius holding half of the background-subtracted
    members inside the cone (Cantat-Gaudin et al.'s r50 is of this kind).
    """

    ra_deg: float
    dec_deg: float
    centre_err_arcmin: float
    xi0_arcmin: float
    eta0_arcmin: float
    rc_arcmin: float
    rc_err_arcmin: float
    rt_arcmin: float
    rt_err_arcmin: float
    background_per_arcmin2: float
    background_err_per_arcmin2: float
    r50_arcmin: float
    r50_err_arcmin: float
    r50_members_arcmin: float
    r50_members_err_arcmin: float
    rt_lower_limit_arcmin: float
    n_cluster: float
    n_used: int
    fit_radius_arcmin: float
    rt_beyond_cone: bool
    method: str

    def to_dict(self) -> dict:
        """Plain data."""
        return {k: (bool(v) if isinstance(v, np.bool_) else v) for k, v in asdict(self).items()}


#: rt is searched up to this multiple of the cone radius (beyond, the cone cannot tell).
RT_MAX_FACTOR = 20.0
_N_THETA = 128
_THETA = np.linspace(0.0, 2.0 * np.pi, _N_THETA, endpoint=False)
_U = np.column_stack([np.cos(_THETA), np.sin(_THETA)])


def disc_fraction_norm(cx: float, cy: float, rc: float, rt: float, radius: float) -> float:
    """Integral of the King profile centred at (cx, cy) over the disc of ``radius`` about 0.

    In polar coordinates about the King centre, the ray at angle theta leaves the disc at
    ``s(theta)``; the integral is the angular mean of ``N_K(min(s, rt))`` (exact in radius,
    a 128-point rule in angle).
    """
    cu = _U @ np.array([cx, cy])
    s = -cu + np.sqrt(np.maximum(radius**2 - (cx * cx + cy * cy) + cu * cu, 0.0))
    return float(np.mean(king_cumulative(np.minimum(s, rt), rc, rt)))


def _params(theta: np.ndarray) -> tuple[float, float, float, float, float]:
    cx, cy, log_rc, log_drt, logit_f = theta
    rc = float(np.exp(log_rc))
    return float(cx), float(cy), rc, rc * (1.0 + float(np.exp(log_drt))), float(
        1.0 / (1.0 + np.exp(-logit_f)))


def _nll(theta: np.ndarray, xi: np.ndarray, eta: np.ndarray, radius: float) -> float:
    cx, cy, rc, rt, f = _params(theta)
    if cx * cx + cy * cy >= (0.9 * radius) ** 2 or not 1e-3 * radius < rc < radius \
            or rt > RT_MAX_FACTOR * radius:
        return 1e300
    norm = disc_fraction_norm(cx, cy, rc, rt, radius)
    r = np.hypot(xi - cx, eta - cy)
    dens = f * king_density(r, rc, rt) / norm + (1.0 - f) / (np.pi * radius**2)
    return -float(np.sum(np.log(np.maximum(dens, 1e-300))))


def _start(xi: np.ndarray, eta: np.ndarray, radius: float) -> list[np.ndarray]:
    cx, cy, rr = float(np.median(xi)), float(np.median(eta)), radius / 2.0
    for _ in range(4):  # shrinking-circle mean: a rough centre robust to the background
        sel = np.hypot(xi - cx, eta - cy) < rr
        if sel.sum() < 10:
            break
        cx, cy, rr = float(np.mean(xi[sel])), float(np.mean(eta[sel])), rr / 1.6
    rh = float(np.median(np.hypot(xi - cx, eta - cy)))
    return [np.array([cx, cy, np.log(rh * fc), np.log(5.0), 1.5]) for fc in (0.25, 0.6)]


def _fit_profile(xi: np.ndarray, eta: np.ndarray, radius: float,
                 starts: list[np.ndarray]) -> np.ndarray:
    best = None
    for s0 in starts:
        res = minimize(_nll, s0, args=(xi, eta, radius), method="Nelder-Mead",
                       options={"xatol": 1e-4, "fatol": 1e-3, "maxiter": 4000})
        if best is None or res.fun < best.fun:
            best = res
    return best.x


def fit_king(xi: np.ndarray, eta: np.ndarray, cone_radius_arcmin: float, ra0: float, dec0: float,
             n_boot: int = 50, rng: np.random.Generator | None = None) -> KingFit:
    """Fit a King profile plus background (centre included) to member positions.

    Parameters
    ----------
    xi, eta : ndarray
        Tangent-plane offsets (arcmin) of the members about the cone centre (ra0, dec0).
    cone_radius_arcmin : float
        Cone radius; members beyond it are ignored.
    ra0, dec0 : float
        Cone centre (deg), to express the fitted centre as (ra, dec).
    n_boot : int
        Bootstrap resamples for the uncertainties.
    rng : numpy.random.Generator, optional
        Random generator (seeded 0 by default, so results are reproducible).

    Returns
    -------
    KingFit

    Raises
    ------
    ValueError
        With fewer than 20 members inside the cone.
    """
    from tgpcore.membership.sample import offsets_to_radec

    radius = float(cone_radius_arcmin)
    inside = np.hypot(xi, eta) < radius
    xi, eta = np.asarray(xi, float)[inside], np.asarray(eta, float)[inside]
    n = len(xi)
    if n < 20:
        raise ValueError(f"King fit needs at least 20 members inside the cone, got {n}")
    rng = rng or np.random.default_rng(0)
    theta = _fit_profile(xi, eta, radius, _start(xi, eta, radius))
    cx, cy, rc, rt, f = _params(theta)
    disc = radius - float(np.hypot(cx, cy))
    bg = (1.0 - f) * n / (np.pi * radius**2)
    boots = []
    for _ in range(n_boot):
        k = rng.integers(0, n, n)
        bx, by, brc, brt, bf = _params(_fit_profile(xi[k], eta[k], radius, [theta]))
        bbg = (1.0 - bf) * n / (np.pi * radius**2)
        br = np.hypot(xi[k] - bx, eta[k] - by)
        boots.append((bx, by, brc, brt, bbg, king_r50(brc, brt),
                      members_r50(br, bbg, radius - float(np.hypot(bx, by)))))
    b = np.array(boots) if len(boots) > 1 else np.full((2, 7), np.nan)
    ra_c, dec_c = offsets_to_radec(ra0, dec0, cx, cy)
    return KingFit(
        ra_deg=float(ra_c), dec_deg=float(dec_c),
        centre_err_arcmin=float(np.hypot(_half_range(b[:, 0]), _half_range(b[:, 1]))),
        xi0_arcmin=cx, eta0_arcmin=cy, rc_arcmin=rc, rc_err_arcmin=_half_range(b[:, 2]),
        rt_arcmin=rt, rt_err_arcmin=_half_range(b[:, 3]),
        background_per_arcmin2=bg, background_err_per_arcmin2=_half_range(b[:, 4]),
        r50_arcmin=king_r50(rc, rt), r50_err_arcmin=_half_range(b[:, 5]),
        r50_members_arcmin=members_r50(np.hypot(xi - cx, eta - cy), bg, disc),
        r50_members_err_arcmin=_half_range(b[:, 6]),
        rt_lower_limit_arcmin=float(np.nanpercentile(b[:, 3], 16)) if n_boot > 1 else rt,
        n_cluster=f * n, n_used=n, fit_radius_arcmin=radius, rt_beyond_cone=bool(rt > disc),
        method=KING_METHOD.format(n=n_boot))
