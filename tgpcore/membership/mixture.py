"""Membership probabilities: a Gaussian mixture deconvolved from each star's errors.

The model in (pmra, pmdec, parallax) is one cluster Gaussian plus ``n_field`` broad field
Gaussians, each convolved with the star's own error covariance ("extreme deconvolution",
Bovy, Hogg & Roweis 2011, fitted by their EM algorithm). Optionally the sky position enters
too: the cluster's surface density is a Plummer profile about the cone centre and the field's
is uniform over the cone, both normalised over the cone, so a star's prior odds of membership
fall with its distance from the centre.

A star's membership probability is the cluster component's share of its likelihood; the
kinematic probability is the same without the positional terms (used for the radial profile,
so that the King fit does not see its own assumption).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar

_LOG2PI = np.log(2.0 * np.pi)
#: Regularisation added to every component's intrinsic covariance (Bovy et al.'s ``w``).
W_REG = np.diag([1e-6, 1e-6, 1e-6])


@dataclass
class MixtureModel:
    """Parameters of the fitted mixture (component 0 is the cluster).

    Attributes
    ----------
    weights : ndarray, shape (K,)
        Mixing fractions (sum to 1).
    means : ndarray, shape (K, 3)
        Component means in (pmra [mas/yr], pmdec [mas/yr], parallax [mas]).
    covs : ndarray, shape (K, 3, 3)
        Intrinsic (error-free) covariances.
    plummer_a_arcmin : float or None
        Plummer scale of the cluster on the sky; ``None`` if positions were not used.
    radius_arcmin : float
        Cone radius over which the spatial densities are normalised.
    n_iter : int
        EM iterations used.
    converged : bool
        Whether the log-likelihood change fell below the tolerance.
    loglike : float
        Final total log-likelihood.
    """

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray
    plummer_a_arcmin: float | None
    radius_arcmin: float
    n_iter: int = 0
    converged: bool = False
    loglike: float = float("nan")
    history: list[float] = field(default_factory=list)

    def copy(self) -> MixtureModel:
        """A deep copy."""
        return MixtureModel(self.weights.copy(), self.means.copy(), self.covs.copy(),
                            self.plummer_a_arcmin, self.radius_arcmin, self.n_iter,
                            self.converged, self.loglike, list(self.history))


def _inv_logdet(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and log-determinant of a stack of symmetric positive 3x3 matrices."""
    a, b, c = t[..., 0, 0], t[..., 0, 1], t[..., 0, 2]
    d, e, f = t[..., 1, 1], t[..., 1, 2], t[..., 2, 2]
    c00 = d * f - e * e
    c01 = c * e - b * f
    c02 = b * e - c * d
    det = a * c00 + b * c01 + c * c02
    inv = np.empty_like(t)
    inv[..., 0, 0] = c00
    inv[..., 0, 1] = inv[..., 1, 0] = c01
    inv[..., 0, 2] = inv[..., 2, 0] = c02
    inv[..., 1, 1] = a * f - c * c
    inv[..., 1, 2] = inv[..., 2, 1] = b * c - a * e
    inv[..., 2, 2] = a * d - b * b
    inv /= det[..., None, None]
    return inv, np.log(det)


def plummer_log_density(r: np.ndarray, a: float, radius: float) -> np.ndarray:
    """Log of a Plummer surface density normalised to 1 over the disc of ``radius`` (per arcmin²)."""
    # Sigma(r) = a^2 / (pi (a^2 + r^2)^2) integrates to R^2 / (R^2 + a^2) within R
    return (2.0 * np.log(a) - np.log(np.pi) - 2.0 * np.log(a * a + r * r)
            + np.log((radius**2 + a * a) / radius**2))


def component_loglike(x: np.ndarray, cov: np.ndarray, mean: np.ndarray,
                      v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log N(x | mean, v + cov) per star, with the inverse total covariance and residual."""
    tinv, logdet = _inv_logdet(cov + v)
    dx = x - mean
    maha = np.einsum("ni,nij,nj->n", dx, tinv, dx)
    return -0.5 * (3 * _LOG2PI + logdet + maha), tinv, dx


def _log_terms(model: MixtureModel, x, cov, r, use_position: bool):
    k = len(model.weights)
    logl = np.empty((len(x), k))
    cache = []
    for j in range(k):
        ll, tinv, dx = component_loglike(x, cov, model.means[j], model.covs[j])
        logl[:, j] = ll
        cache.append((tinv, dx))
    if use_position:
        area = np.pi * model.radius_arcmin**2
        logl[:, 0] += plummer_log_density(r, model.plummer_a_arcmin, model.radius_arcmin)
        logl[:, 1:] += -np.log(area)
    return logl, cache


def _responsibilities(logl: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lw = logl + np.log(np.maximum(weights, 1e-300))
    m = lw.max(1, keepdims=True)
    tot = m[:, 0] + np.log(np.exp(lw - m).sum(1))
    return np.exp(lw - tot[:, None]), tot


def fit_mixture(x: np.ndarray, cov: np.ndarray, r: np.ndarray, init: MixtureModel, *,
                use_position: bool = True, max_iter: int = 300, tol: float = 1e-7,
                sample_weight: np.ndarray | None = None, fixed_field: bool = False,
                field_loglike: np.ndarray | None = None) -> MixtureModel:
    """Fit the mixture by extreme-deconvolution EM.

    Parameters
    ----------
    x : ndarray, shape (N, 3)
        (pmra, pmdec, parallax).
    cov : ndarray, shape (N, 3, 3)
        Per-star error covariances.
    r : ndarray, shape (N,)
        Distance from the cone centre (arcmin); used if ``use_position``.
    init : MixtureModel
        Starting parameters (not modified).
    use_position : bool
        Include the Plummer-versus-uniform sky term.
    max_iter : int
        Iteration cap.
    tol : float
        Stop when the mean log-likelihood per star changes by less than this.
    sample_weight : ndarray, optional
        Multiplicity of each star (bootstrap resampling).
    fixed_field : bool
        Keep the field components' means and covariances fixed (only the cluster component,
        the mixing fractions and the Plummer scale are refitted). Then ``field_loglike`` (N, K-1)
        may carry their precomputed log-likelihoods.
    field_loglike : ndarray, optional
        See ``fixed_field``.

    Returns
    -------
    MixtureModel
        The fitted model.
    """
    m = init.copy()
    n, k = len(x), len(m.weights)
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    wsum = w.sum()
    prev = -np.inf
    m.history = []
    for it in range(1, max_iter + 1):
        if fixed_field and field_loglike is not None:
            ll0, tinv0, dx0 = component_loglike(x, cov, m.means[0], m.covs[0])
            logl = np.empty((n, k))
            logl[:, 0] = ll0
            logl[:, 1:] = field_loglike
            if use_position:
                logl[:, 0] += plummer_log_density(r, m.plummer_a_arcmin, m.radius_arcmin)
                logl[:, 1:] += -np.log(np.pi * m.radius_arcmin**2)
            cache = [(tinv0, dx0)]
        else:
            logl, cache = _log_terms(m, x, cov, r, use_position)
        q, tot = _responsibilities(logl, m.weights)
        ll = float((w * tot).sum())
        m.history.append(ll)
        if ll - prev < tol * wsum and it > 2:
            m.converged = True
            m.loglike = ll
            m.n_iter = it
            break
        prev = ll
        qw = q * w[:, None]
        nk = qw.sum(0)
        m.weights = nk / wsum
        comps = [0] if fixed_field else range(k)
        for j in comps:
            if nk[j] < 1e-8:
                continue
            tinv, dx = cache[j]
            vj = m.covs[j]
            qj = qw[:, j]
            vt = np.matmul(vj, tinv)                                   # V T^-1
            b = m.means[j] + np.matmul(vt, dx[:, :, None])[:, :, 0]    # posterior means
            mu = qj @ b / nk[j]
            d = b - mu
            # sum_n q_n B_n with B_n = V - V T_n^-1 V (posterior covariances)
            qb = nk[j] * vj - vj @ np.tensordot(qj, tinv, axes=1) @ vj
            v = ((d * qj[:, None]).T @ d + qb) / nk[j]
            m.means[j] = mu
            m.covs[j] = 0.5 * (v + v.T) + W_REG
        if use_position:
            qc = qw[:, 0]

            def nll(loga: float, qc=qc) -> float:
                return -float((qc * plummer_log_density(r, np.exp(loga), m.radius_arcmin)).sum())

            lo, hi = np.log(0.02 * m.radius_arcmin), np.log(5.0 * m.radius_arcmin)
            res = minimize_scalar(nll, bounds=(lo, hi), method="bounded",
                                  options={"xatol": 1e-3})
            m.plummer_a_arcmin = float(np.exp(res.x))
    else:
        m.loglike = prev
        m.n_iter = max_iter
    return m


def membership_probabilities(model: MixtureModel, x: np.ndarray, cov: np.ndarray,
                             r: np.ndarray, use_position: bool = True) -> np.ndarray:
    """Probability that each star belongs to the cluster component (component 0).

    Rows with non-finite astrometry get NaN.
    """
    p = np.full(len(x), np.nan)
    ok = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(cov), axis=(1, 2)) & np.isfinite(r)
    if ok.any():
        logl, _ = _log_terms(model, x[ok], cov[ok], r[ok], use_position)
        q, _ = _responsibilities(logl, model.weights)
        p[ok] = q[:, 0]
    return p


def field_loglikes(model: MixtureModel, x: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Log-likelihoods (N, K-1) of the field components (for fixed-field refits)."""
    return np.column_stack([component_loglike(x, cov, model.means[j], model.covs[j])[0]
                            for j in range(1, len(model.weights))])


def initial_model(x: np.ndarray, centroid: tuple[float, float, float], n_cluster_guess: float,
                  radius_arcmin: float, plummer_a_arcmin: float, n_field: int = 2,
                  pm_dispersion: float = 0.2, parallax_dispersion: float = 0.05) -> MixtureModel:
    """Starting parameters: the KDE centroid for the cluster, robust moments for the field.

    Parameters
    ----------
    x : ndarray, shape (N, 3)
        The fitted stars' (pmra, pmdec, parallax).
    centroid : (float, float, float)
        KDE centroid.
    n_cluster_guess : float
        Rough number of members (sets the cluster's starting weight).
    radius_arcmin, plummer_a_arcmin : float
        Cone radius and starting Plummer scale.
    n_field : int
        Number of field Gaussians (1-3); each next one is 3x broader than the last.
    pm_dispersion, parallax_dispersion : float
        Starting intrinsic dispersions of the cluster (mas/yr, mas).
    """
    med = np.median(x, 0)
    mad = 1.4826 * np.median(np.abs(x - med), 0)
    cov_f = np.diag(np.maximum(mad, 0.05) ** 2)
    fc = min(max(n_cluster_guess / len(x), 0.005), 0.5)
    scales = [1.0, 9.0, 81.0][:n_field]
    fw = np.array([0.7, 0.25, 0.05][:n_field])
    fw = fw / fw.sum() * (1.0 - fc)
    weights = np.concatenate([[fc], fw])
    means = np.vstack([np.asarray(centroid, float)] + [med] * n_field)
    covs = np.stack([np.diag([pm_dispersion**2, pm_dispersion**2, parallax_dispersion**2])]
                    + [cov_f * s for s in scales])
    return MixtureModel(weights, means, covs, plummer_a_arcmin, radius_arcmin)
