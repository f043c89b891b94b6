"""Finding the posterior's highest peak: differential evolution with restarts, then a local
optimiser.

Cluster CMD fits have separated local optima (a young reddened cluster against an old
unreddened one, metallicity against reddening). :func:`global_search` runs
:func:`scipy.optimize.differential_evolution` several times from different seeds; the distinct
optima it finds are each polished by :func:`local_refine` (Nelder-Mead within the bounds), and
the best wins. How many distinct optima there were is kept as a diagnostic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import differential_evolution, minimize
from scipy.stats import qmc


@dataclass
class Candidate:
    """One optimum: free-parameter vector and the objective (negative log posterior)."""

    x: np.ndarray
    fun: float
    origin: str


def global_search(fun: Callable[[np.ndarray], float], bounds: list[tuple[float, float]],
                  seed: int = 0, restarts: int = 3, popsize: int = 10, maxiter: int = 60,
                  tol: float = 1e-3, starts: list[np.ndarray] | None = None
                  ) -> list[Candidate]:
    """Minimise ``fun`` within ``bounds`` by differential evolution, ``restarts`` times.

    Parameters
    ----------
    fun : callable
        Objective (e.g. negative log posterior) of the free-parameter vector.
    bounds : list of (float, float)
        Search box.
    seed : int
        Seed of the first run; run k uses ``seed + k``.
    restarts : int
        Independent runs.
    popsize, maxiter, tol : int, int, float
        As in :func:`scipy.optimize.differential_evolution`.
    starts : list of ndarray, optional
        Known good points put into every run's initial population (the rest of it is a
        Latin hypercube or a Halton sample).

    Returns
    -------
    list of Candidate
        One per run, best first.
    """
    out = []
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    d = len(bounds)
    for k in range(restarts):
        rng = np.random.default_rng(seed + k)
        n_pop = popsize * d
        sampler = qmc.Halton(d, seed=rng) if k % 2 else qmc.LatinHypercube(d, seed=rng)
        unit = sampler.random(n_pop)
        pop = lo + unit * (hi - lo)
        for j, x in enumerate((starts or [])[: n_pop // 2]):
            pop[j] = np.clip(x, lo, hi)
        res = differential_evolution(fun, bounds, seed=seed + k, popsize=popsize,
                                     maxiter=maxiter, tol=tol, polish=False, init=pop,
                                     mutation=(0.5, 1.0), recombination=0.7)
        out.append(Candidate(np.asarray(res.x, float), float(res.fun), f"DE run {k + 1}"))
    return sorted(out, key=lambda c: c.fun)


def distinct(cands: list[Candidate], scales: np.ndarray) -> list[Candidate]:
    """Candidates that differ by more than ``scales`` in some parameter, best first."""
    kept: list[Candidate] = []
    for c in sorted(cands, key=lambda c: c.fun):
        if all(np.any(np.abs(c.x - k.x) > scales) for k in kept):
            kept.append(c)
    return kept


def local_refine(fun: Callable[[np.ndarray], float], x0: np.ndarray,
                 bounds: list[tuple[float, float]], steps: np.ndarray,
                 maxfev: int = 600) -> Candidate:
    """Polish an optimum with Nelder-Mead inside ``bounds``.

    Parameters
    ----------
    fun : callable
        Objective.
    x0 : ndarray
        Start.
    bounds : list of (float, float)
        Box.
    steps : ndarray
        Initial simplex size per parameter.
    maxfev : int
        Largest number of objective calls.

    Returns
    -------
    Candidate
    """
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    x0 = np.clip(np.asarray(x0, float), lo, hi)
    simplex = [x0]
    for i in range(len(x0)):
        v = x0.copy()
        v[i] = v[i] + steps[i] if v[i] + steps[i] <= hi[i] else v[i] - steps[i]
        simplex.append(v)
    res = minimize(fun, x0, method="Nelder-Mead", bounds=list(zip(lo, hi, strict=True)),
                   options={"initial_simplex": np.array(simplex), "maxfev": maxfev,
                            "xatol": 1e-4, "fatol": 0.01})
    return Candidate(np.asarray(res.x, float), float(res.fun), "Nelder-Mead")


def numerical_covariance(fun: Callable[[np.ndarray], float], x: np.ndarray,
                         steps: np.ndarray, bounds: list[tuple[float, float]]
                         ) -> np.ndarray | None:
    """Inverse of the finite-difference Hessian of ``fun`` (a negative log posterior) at ``x``.

    Returns ``None`` if the Hessian is not positive definite (then the caller falls back to
    fixed step sizes).
    """
    d = len(x)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    h = np.asarray(steps, float).copy()
    xc = np.clip(x, lo + h, hi - h)  # keep the stencil inside the box
    f0 = fun(xc)
    hess = np.zeros((d, d))
    fp = np.array([fun(xc + h[i] * np.eye(d)[i]) for i in range(d)])
    fm = np.array([fun(xc - h[i] * np.eye(d)[i]) for i in range(d)])
    for i in range(d):
        hess[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
        for j in range(i + 1, d):
            ei, ej = h[i] * np.eye(d)[i], h[j] * np.eye(d)[j]
            fpp = fun(xc + ei + ej)
            fmm = fun(xc - ei - ej)
            hess[i, j] = hess[j, i] = (fpp - fp[i] - fp[j] + 2 * f0 - fm[i] - fm[j] + fmm) / (
                2 * h[i] * h[j])
    if not np.all(np.isfinite(hess)):
        return None
    try:
        np.linalg.cholesky(hess)
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return None
    return 0.5 * (cov + cov.T)
