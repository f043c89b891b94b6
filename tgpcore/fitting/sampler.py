"""Posterior sampling with emcee, and its summary: percentiles, covariance, diagnostics.

The ensemble starts in a small Gaussian ball around the optimum (shaped by the Hessian's
inverse when it is usable), burns in, then samples. Moves are a mixture of differential
evolution (80 %) and its snooker variant (20 %) (emcee's ``DEMove``/``DESnookerMove``), which
mix faster than the default stretch move on these nearly Gaussian, correlated posteriors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import emcee
import numpy as np

#: Percentiles reported for every parameter.
PERCENTILES = (16.0, 50.0, 84.0)


@dataclass
class Chain:
    """Samples after burn-in and what is known about their quality."""

    samples: np.ndarray        # (n_samples, n_free)
    log_prob: np.ndarray       # (n_samples,)
    acceptance: float
    autocorr_steps: np.ndarray  # integrated autocorrelation time per parameter (steps)
    n_walkers: int
    n_steps: int
    n_burn: int

    @property
    def n_effective(self) -> float:
        """Approximate number of independent samples (walkers x steps / max tau)."""
        tau = float(np.nanmax(self.autocorr_steps)) if len(self.autocorr_steps) else 1.0
        return self.n_walkers * (self.n_steps - self.n_burn) / max(tau, 1.0)


def run_emcee(log_prob: Callable[[np.ndarray], float], x0: np.ndarray, cov: np.ndarray,
              bounds: list[tuple[float, float]], n_walkers: int, n_steps: int, n_burn: int,
              seed: int = 0) -> Chain:
    """Sample ``log_prob`` with emcee from a ball around ``x0``.

    Parameters
    ----------
    log_prob : callable
        Log posterior of the free-parameter vector (-inf outside the support).
    x0 : ndarray
        The optimum.
    cov : ndarray
        Covariance that shapes the starting ball (scaled down by 4).
    bounds : list of (float, float)
        Hard bounds (starting points are kept inside).
    n_walkers, n_steps, n_burn : int
        Walkers, total steps, and steps discarded as burn-in.
    seed : int
        Seed of the starting ball and of the sampler's moves.

    Returns
    -------
    Chain
    """
    rng = np.random.default_rng(seed)
    d = len(x0)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    start = np.empty((n_walkers, d))
    chol = np.linalg.cholesky(cov / 4.0 + 1e-12 * np.eye(d))
    for w in range(n_walkers):
        for _ in range(100):
            p = x0 + chol @ rng.normal(size=d)
            p = np.clip(p, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
            if np.isfinite(log_prob(p)):
                break
        else:
            p = np.clip(x0, lo, hi)
        start[w] = p
    sampler = emcee.EnsembleSampler(n_walkers, d, log_prob,
                                    moves=[(emcee.moves.DEMove(), 0.8),
                                           (emcee.moves.DESnookerMove(), 0.2)])
    sampler.random_state = np.random.RandomState(seed).get_state()
    sampler.run_mcmc(start, n_steps, progress=False)
    chain = sampler.get_chain(discard=n_burn, flat=True)
    lp = sampler.get_log_prob(discard=n_burn, flat=True)
    try:
        tau = sampler.get_autocorr_time(discard=n_burn, quiet=True, tol=0)
    except (emcee.autocorr.AutocorrError, ValueError):
        tau = np.full(d, np.nan)
    return Chain(chain, lp, float(np.mean(sampler.acceptance_fraction)), np.asarray(tau),
                 n_walkers, n_steps, n_burn)


def summarise(samples: np.ndarray) -> dict[str, np.ndarray]:
    """Percentiles (16, 50, 84), mean, standard deviation and covariance of samples.

    Parameters
    ----------
    samples : ndarray, shape (n, d)

    Returns
    -------
    dict
        ``p16 p50 p84 mean std`` (each shape (d,)) and ``cov`` (d, d).
    """
    p = np.percentile(samples, PERCENTILES, axis=0)
    cov = np.atleast_2d(np.cov(samples, rowvar=False))
    return {"p16": p[0], "p50": p[1], "p84": p[2], "mean": samples.mean(axis=0),
            "std": samples.std(axis=0, ddof=1), "cov": cov}
