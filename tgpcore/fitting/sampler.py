"""Posterior sampling with emcee, and its summary: percentiles, covariance, diagnostics.

The ensemble starts in a small Gaussian ball around the optimum (shaped by the Hessian's
inverse when it is usable) and burns in with differential-evolution moves (emcee's
``DEMove``/``DESnookerMove``). The cluster posteriors are close to Gaussian but strongly
correlated ([M/H] against E(B-V) and the distance), where those moves alone need ~40 steps per
autocorrelation time. So the burn-in's samples then define an *independence proposal*: a
multivariate Student t (4 degrees of freedom) centred on their mean with 1.2 times their
covariance (:func:`_proposal_cov`; refined over three burn-in stages), drawn regardless of the walker's position and accepted by the Metropolis-Hastings
ratio (:class:`IndependenceMove`). It is fixed before the kept samples start, so the chain is a
valid Markov chain; mixed 60/30/10 with the DE and snooker moves (which keep the sampler correct
and exploring if the posterior is not Gaussian), it brings the autocorrelation time down to a
few steps. Sampling then goes on until the chain is longer than :data:`TAU_FACTOR`
autocorrelation times or a cap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import emcee
import numpy as np

#: Percentiles reported for every parameter.
PERCENTILES = (16.0, 50.0, 84.0)


#: A chain counts as converged when it is longer (after burn-in) than this many
#: autocorrelation times (emcee's recommendation; Foreman-Mackey et al. 2013).
TAU_FACTOR = 50.0


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
    max_steps: int = 0          # the cap the sampler was allowed to go to (0: fixed length)

    @property
    def converged(self) -> bool:
        """Chain (after burn-in) longer than :data:`TAU_FACTOR` autocorrelation times of every
        parameter."""
        tau = np.nan_to_num(self.autocorr_steps, nan=np.inf)
        return bool(len(tau) and np.all((self.n_steps - self.n_burn) > TAU_FACTOR * tau))

    @property
    def n_effective(self) -> float:
        """Approximate number of independent samples (walkers x steps / max tau)."""
        tau = float(np.nanmax(self.autocorr_steps)) if len(self.autocorr_steps) else 1.0
        return self.n_walkers * (self.n_steps - self.n_burn) / max(tau, 1.0)


class IndependenceMove(emcee.moves.MHMove):
    """Metropolis-Hastings proposal independent of the current point: a multivariate Student t
    with ``df`` degrees of freedom, centre ``mean`` and scale matrix ``cov``, truncated to the
    box ``lo``-``hi`` (drawn again outside it; the truncation's normalisation is the same for
    every point, so the Hastings ratio is unchanged)."""

    def __init__(self, mean: np.ndarray, cov: np.ndarray, df: float = 4.0,
                 lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> None:
        self.mean = np.asarray(mean, float)
        d = len(self.mean)
        self.chol = np.linalg.cholesky(np.asarray(cov, float) + 1e-14 * np.eye(d))
        self.inv = np.linalg.inv(self.chol)
        self.df = float(df)
        self.lo = np.full(d, -np.inf) if lo is None else np.asarray(lo, float)
        self.hi = np.full(d, np.inf) if hi is None else np.asarray(hi, float)
        super().__init__(self._propose, ndim=d)

    def log_q(self, x: np.ndarray) -> np.ndarray:
        """log density of the proposal at ``x`` (up to a constant)."""
        z = (np.atleast_2d(x) - self.mean) @ self.inv.T
        return -0.5 * (self.df + len(self.mean)) * np.log1p(np.sum(z * z, axis=1) / self.df)

    def _propose(self, coords: np.ndarray, random: np.random.RandomState
                 ) -> tuple[np.ndarray, np.ndarray]:
        n, d = coords.shape
        new = np.empty((n, d))
        todo = np.arange(n)
        for _ in range(50):
            z = random.standard_normal((len(todo), d))
            g = random.chisquare(self.df, len(todo))
            x = self.mean + (z @ self.chol.T) * np.sqrt(self.df / g)[:, None]
            new[todo] = x
            todo = todo[~np.all((x > self.lo) & (x < self.hi), axis=1)]
            if len(todo) == 0:
                break
        else:  # the box is nearly outside the proposal: stay (a rejected move)
            new[todo] = coords[todo]
            out = self.log_q(coords) - self.log_q(new)
            out[todo] = -np.inf
            return new, out
        return new, self.log_q(coords) - self.log_q(new)


def _floor_cov(cov: np.ndarray, min_sd: np.ndarray | None) -> np.ndarray:
    """``cov`` with each standard deviation raised to at least ``min_sd`` (correlations kept).
    A dimension collapsed in the starting ball or the proposal (a parameter against its
    bound, a flat Hessian) is never explored by differential-evolution moves, which only
    combine differences between walkers."""
    if min_sd is None:
        return cov
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    new = np.maximum(sd, min_sd)
    scale = np.where(sd > 0, new / np.where(sd > 0, sd, 1.0), 1.0)
    out = cov * np.outer(scale, scale)
    zero = sd <= 0
    out[zero, :] = 0.0
    out[:, zero] = 0.0
    out[zero, zero] = new[zero] ** 2
    return out


def _proposal_cov(chain: np.ndarray, curvature: np.ndarray | None = None,
                  factor: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale matrix of the independence proposal from samples (n_steps, n_walkers,
    d): their mean, and ``factor`` times their covariance (plus ``curvature``, the inverse
    Hessian at the optimum, when given: the first burn-in stage starts from a small ball and
    has not spread to the posterior's width yet). An independence proposal much wider than the
    target is rarely accepted in six dimensions, one narrower mixes badly in the tails; a
    factor ~1.2 on a good estimate is best (measured on Gaussians: tau ~ 5 steps)."""
    flat = chain.reshape(-1, chain.shape[-1])
    mean = flat.mean(axis=0)
    cov = np.atleast_2d(np.cov(flat, rowvar=False))
    total = cov if curvature is None else 0.5 * (cov + curvature)
    try:
        np.linalg.cholesky(total)
    except np.linalg.LinAlgError:
        if curvature is None:
            raise
        total = curvature
    return mean, factor * total


def run_emcee(log_prob: Callable[[np.ndarray], float], x0: np.ndarray, cov: np.ndarray,
              bounds: list[tuple[float, float]], n_walkers: int, n_steps: int, n_burn: int,
              seed: int = 0, max_steps: int | None = None, chunk: int = 40,
              adapt: bool = True, min_sd: np.ndarray | None = None) -> Chain:
    """Sample ``log_prob`` with emcee from a ball around ``x0``.

    With ``max_steps``, sampling goes on after the first ``n_steps`` until the chain after
    burn-in is longer than :data:`TAU_FACTOR` times the largest integrated autocorrelation
    time, or until ``max_steps`` (the cap; the returned chain then says it did not converge).

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
        Walkers, total steps (the least, with ``max_steps``), and steps discarded as burn-in.
    seed : int
        Seed of the starting ball and of the sampler's moves.
    max_steps : int, optional
        Cap of the adaptive length (total steps including burn-in).
    chunk : int
        Least number of steps added between convergence checks.
    adapt : bool
        Use the independence proposal built from the burn-in (see the module docstring);
        ``False``: differential-evolution moves only.
    min_sd : ndarray, optional
        Least standard deviation per parameter of the starting ball and of the proposal.

    Returns
    -------
    Chain
    """
    rng = np.random.default_rng(seed)
    d = len(x0)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    start = np.empty((n_walkers, d))
    cov = _floor_cov(np.asarray(cov, float), None if min_sd is None else 2.0 * min_sd)
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
    de = [(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.2)]
    state_rng = np.random.RandomState(seed)
    if adapt and n_burn >= 30:
        # burn-in in three stages: DE moves; then the independence proposal from the first
        # stage (and the curvature); then from the second; the kept samples use the third's
        third = n_burn // 3
        lengths = (third, third, n_burn - 2 * third)
        state, random_state = start, state_rng.get_state()
        moves = de
        for k, n in enumerate(lengths):
            burner = emcee.EnsembleSampler(n_walkers, d, log_prob, moves=moves)
            burner.random_state = random_state
            state = burner.run_mcmc(state, n, progress=False)
            random_state = burner.random_state
            try:
                mean, pcov = _proposal_cov(burner.get_chain()[n // 3:],
                                           cov if k == 0 else None)
            except np.linalg.LinAlgError:
                continue  # keep the previous proposal
            pcov = _floor_cov(pcov, min_sd)
            moves = [(IndependenceMove(mean, pcov, lo=lo, hi=hi), 0.6),
                     (emcee.moves.DEMove(), 0.3), (emcee.moves.DESnookerMove(), 0.1)]
        first = max(n_steps - n_burn, chunk)
        discard = 0
    else:
        state, moves, random_state = start, de, state_rng.get_state()
        first, discard = n_steps, n_burn
    sampler = emcee.EnsembleSampler(n_walkers, d, log_prob, moves=moves)
    sampler.random_state = random_state

    def autocorr() -> np.ndarray:
        try:
            return np.asarray(sampler.get_autocorr_time(discard=discard, quiet=True, tol=0))
        except (emcee.autocorr.AutocorrError, ValueError):
            return np.full(d, np.nan)

    state = sampler.run_mcmc(state, first, progress=False)
    kept = first - discard          # steps after burn-in so far
    done = n_burn + kept            # total steps, burn-in included
    tau = autocorr()
    cap = int(max_steps) if max_steps else 0
    while cap and done < cap:
        t = np.nan_to_num(tau, nan=np.inf)
        if np.all(kept > TAU_FACTOR * t):
            break
        # go to the length the current estimate asks for, within the cap
        need = TAU_FACTOR * float(np.max(t)) * 1.05 if np.all(np.isfinite(t)) \
            else kept + chunk
        step = int(min(max(chunk, need - kept), cap - done))
        if step <= 0:
            break
        state = sampler.run_mcmc(state, step, progress=False)
        kept += step
        done += step
        tau = autocorr()
    chain = sampler.get_chain(discard=discard, flat=True)
    lp = sampler.get_log_prob(discard=discard, flat=True)
    return Chain(chain, lp, float(np.mean(sampler.acceptance_fraction)), np.asarray(tau),
                 n_walkers, done, n_burn, cap)


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
