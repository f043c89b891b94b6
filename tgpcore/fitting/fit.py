"""Fit log age, distance modulus, E(B-V) and [M/H] of a cluster, with uncertainties.

Stages:

1. **Global search** on a softened problem: at most ``max_search_stars`` stars (the brightest
   always, the rest drawn by membership weight), intrinsic scatter 0.05 mag so that the
   likelihood has wide basins, the binary fraction held at ``search_f_bin``. Starting points
   come from matching the diagram to a grid of isochrone templates (:mod:`.seeds`); each is
   polished, and differential evolution, restarted ``restarts`` times with different seeds
   and with those points in its population, explores the rest.
2. **Local optimisation** (Nelder-Mead) of each distinct optimum, first on the softened
   problem, then the best ones on the full problem (all stars, final model, binary fraction
   free); the best wins.
3. **Uncertainties:** emcee from a ball shaped by the inverse Hessian at the optimum; the
   posterior's 16/50/84 percentiles and covariance are reported, with the autocorrelation
   time and the effective number of samples.

Any parameter can be fixed or given a Gaussian prior (:mod:`tgpcore.fitting.priors`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from tgpcore.fitting.data import ClusterPhotometry, trim_faint_incomplete
from tgpcore.fitting.likelihood import PARAMETER_NAMES, ClusterLikelihood
from tgpcore.fitting.priors import Prior, PriorSet, parse_prior
from tgpcore.fitting.result import FitResult, ParameterEstimate
from tgpcore.fitting.sampler import run_emcee, summarise
from tgpcore.fitting.search import (
    Candidate,
    distinct,
    global_search,
    local_refine,
    numerical_covariance,
)
from tgpcore.fitting.seeds import template_seeds
from tgpcore.fitting.synthetic import ModelSettings
from tgpcore.isochrones.extinction import extinction_ratio
from tgpcore.isochrones.grid import IsochroneGrid
from tgpcore.isochrones.interpolate import IsochroneInterpolator

#: Step sizes per parameter for simplices and finite differences.
STEPS = dict(zip(PARAMETER_NAMES, (0.02, 0.05, 0.03, 0.01, 0.05, 0.005), strict=True))
#: Two optima are distinct when they differ by more than this in some parameter.
DISTINCT = dict(zip(PARAMETER_NAMES, (0.05, 0.1, 0.1, 0.03, 1.0, 1.0), strict=True))
#: Nuisance parameters held fixed by the global search, and their start for the local stage.
_NUISANCE_START = {"f_bin": 0.3, "s_int": 0.02}


@dataclass(frozen=True)
class FitSettings:
    """How hard the fit works.

    Attributes
    ----------
    model : ModelSettings
        The likelihood's model (final stage and sampling).
    search_model : ModelSettings
        The softened model of the global search.
    max_search_stars : int
        Stars used by the global search.
    restarts, popsize, maxiter : int
        Differential-evolution runs and their size.
    n_templates, template_age_step, template_mh_step
        Starting points from matching the diagram to isochrone templates on a grid of this
        step (:mod:`tgpcore.fitting.seeds`): how many, and the grid.
    n_refine : int
        Distinct optima polished on the full problem.
    refine_maxfev : int
        Likelihood calls allowed to each of those polishes.
    n_walkers, n_steps, n_burn : int
        emcee ensemble size, steps and burn-in.
    search_f_bin : float
        Binary fraction during the global search.
    trim_incomplete : bool
        Leave out observables at the faint end where they are incomplete
        (:func:`~tgpcore.fitting.data.trim_faint_incomplete`).
    seed : int
        Seed of everything random in the fit.
    """

    model: ModelSettings = field(default_factory=ModelSettings)
    search_model: ModelSettings = field(default_factory=lambda: ModelSettings(
        intrinsic_scatter=0.05, spacing=2.0, outlier_fraction=0.1))
    max_search_stars: int = 400
    restarts: int = 2
    popsize: int = 8
    maxiter: int = 40
    n_templates: int = 6
    template_age_step: float = 0.15
    template_mh_step: float = 0.5
    n_refine: int = 3
    refine_maxfev: int = 400
    n_walkers: int = 16
    n_steps: int = 180
    n_burn: int = 60
    search_f_bin: float = 0.0
    trim_incomplete: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        """Plain data."""
        return asdict(self)


def build_priors(interpolator: IsochroneInterpolator,
                 priors: PriorSet | Mapping[str, Prior | float] | Iterable[str] | None,
                 scatter_floor: float | None = None) -> PriorSet:
    """Default priors (clipped to the grid) updated with the user's.

    Parameters
    ----------
    interpolator : IsochroneInterpolator
        Sets the age and [M/H] ranges.
    scatter_floor : float, optional
        Lowest intrinsic scatter the model resolves (``ModelSettings.intrinsic_scatter``).
    priors : PriorSet, mapping or iterable of str, optional
        A complete :class:`PriorSet`; or ``{name: Prior or fixed value}``; or text specs
        (``"mh=0.0"``, ``"dm=9.7+-0.05"``, ``"log_age=9:9.8"``).
    """
    base = PriorSet.default(interpolator.age_range, interpolator.mh_range, scatter_floor)
    if priors is None:
        return base
    if isinstance(priors, PriorSet):
        items = list(priors.priors.items())
    elif isinstance(priors, Mapping):
        items = [(k, v if isinstance(v, Prior) else Prior("fixed", value=float(v)))
                 for k, v in priors.items()]
    else:
        items = [parse_prior(s) for s in priors]
    for name, p in items:
        base.set(name, p)
    return base


def _search_subset(data: ClusterPhotometry, n_max: int, rng: np.random.Generator
                   ) -> ClusterPhotometry:
    if data.n_stars <= n_max:
        return data
    order = np.argsort(data.values[:, 0])
    n_bright = n_max // 6
    bright = order[:n_bright]
    rest = order[n_bright:]
    w = data.p_member[rest] + 1e-3
    pick = rng.choice(rest, n_max - n_bright, replace=False, p=w / w.sum())
    return data.subset(np.sort(np.r_[bright, pick]))


def _objective(like: ClusterLikelihood, priors: PriorSet, names: tuple[str, ...],
               fill: dict[str, float]) -> Callable[[np.ndarray], float]:
    """Negative log posterior of the parameters ``names``; others from ``fill``/fixed."""
    free = priors.free

    def fun(x: np.ndarray) -> float:
        vals = dict(zip(names, x, strict=True))
        full = priors.full_vector([vals.get(k, fill.get(k)) for k in free])
        lp = priors.logprior(full)
        if not np.isfinite(lp):
            return 1e30
        ll = like(full)
        return -(ll + lp) if np.isfinite(ll) else 1e30

    return fun


def _template_starts(data: ClusterPhotometry, like: ClusterLikelihood, ps: PriorSet,
                     names: tuple[str, ...], settings: FitSettings) -> list[np.ndarray]:
    """Starting points from matching the CMD to isochrone templates (seeds.py), as vectors of
    the search parameters."""
    def grid(name: str, step: float) -> np.ndarray:
        p = ps.priors[name]
        if p.kind == "fixed":
            return np.array([p.value])
        lo, hi = p.search_bounds()
        n = max(2, int(np.ceil((hi - lo) / step)) + 1)
        return np.linspace(lo, hi, n)

    seeds = template_seeds(data, like.interp, like.bands, like.design, like.ratios,
                           grid("log_age", settings.template_age_step),
                           grid("mh", settings.template_mh_step),
                           ps.priors["dm"].search_bounds() if ps.priors["dm"].kind != "fixed"
                           else (ps.priors["dm"].value - 1e-6, ps.priors["dm"].value + 1e-6),
                           ps.priors["ebv"].search_bounds() if ps.priors["ebv"].kind != "fixed"
                           else (ps.priors["ebv"].value, ps.priors["ebv"].value + 1e-6),
                           n_best=settings.n_templates)
    out = []
    for s in seeds:
        vals = {"log_age": s.log_age, "mh": s.mh, "dm": s.dm, "ebv": s.ebv}
        out.append(np.array([vals[k] for k in names]))
    return out


def fit_cluster(data: ClusterPhotometry, grid: IsochroneGrid | None = None,
                priors: PriorSet | Mapping[str, Prior | float] | Iterable[str] | None = None,
                settings: FitSettings | None = None,
                interpolator: IsochroneInterpolator | None = None,
                log: Callable[[str], None] | None = None) -> FitResult:
    """Fit a cluster's photometry with isochrones.

    Parameters
    ----------
    data : ClusterPhotometry
        Stars, errors and membership weights.
    grid : IsochroneGrid, optional
        Isochrones (the packaged PARSEC grid, from its HDF5 cache, by default).
    priors : PriorSet, mapping or iterable of str, optional
        Fixed values and priors (see :func:`build_priors`).
    settings : FitSettings, optional
        Search and sampling effort.
    interpolator : IsochroneInterpolator, optional
        Re-use an interpolator (it must carry the bands of ``data``).
    log : callable, optional
        Receives progress messages.

    Returns
    -------
    FitResult
        Estimates of log age, [M/H], distance modulus, E(B-V) and binary fraction with
        16/50/84 percentiles (emcee), covariance, derived age/distance/A_V, diagnostics.
    """
    say = log or (lambda msg: None)
    settings = settings or FitSettings()
    t0 = time.perf_counter()
    if interpolator is None:
        if grid is None:
            from tgpcore.isochrones.store import load_grid

            grid = load_grid()
        interpolator = IsochroneInterpolator(grid, bands=data.bands)
    if settings.trim_incomplete:
        data = trim_faint_incomplete(data)
    ps = build_priors(interpolator, priors, settings.model.intrinsic_scatter)
    free = ps.free
    if not free:
        raise ValueError("every parameter is fixed: nothing to fit")
    rng = np.random.default_rng(settings.seed)
    like = ClusterLikelihood(data, interpolator, settings.model)
    sub = _search_subset(data, settings.max_search_stars, rng)
    like_s = ClusterLikelihood(sub, interpolator, settings.search_model)
    search_fill = {"f_bin": settings.search_f_bin,
                   "s_int": settings.search_model.intrinsic_scatter}

    # 1. global search (nuisance parameters held fixed)
    search_names = tuple(k for k in free if k not in search_fill)
    cands: list[Candidate] = []
    if search_names:
        obj_s = _objective(like_s, ps, search_names, search_fill)
        bounds_s = [ps.priors[k].search_bounds() for k in search_names]
        scales = np.array([DISTINCT[k] for k in search_names])
        steps_s = np.array([STEPS[k] for k in search_names]) * 2.0
        seed_x = _template_starts(data, like, ps, search_names, settings)
        seeded = [local_refine(obj_s, x, bounds_s, steps_s, maxfev=150) for x in seed_x]
        for c in seeded:
            c.origin = "template match + Nelder-Mead"
        cands = global_search(obj_s, bounds_s, seed=settings.seed, restarts=settings.restarts,
                              popsize=settings.popsize, maxiter=settings.maxiter,
                              starts=[c.x for c in sorted(seeded, key=lambda c: c.fun)])
        polished = [local_refine(obj_s, c.x, bounds_s, steps_s, maxfev=300)
                    for c in distinct(cands, scales)]
        cands = cands + seeded
        pool = distinct(polished + seeded, scales)
        say(f"global search: {len(seed_x)} template seeds, {settings.restarts} DE runs, "
            f"{len(pool)} distinct optima; best -log p = {pool[0].fun:.1f}")
        starts = pool[: settings.n_refine]
    else:
        starts = [Candidate(np.zeros(0), 0.0, "none")]

    # 2. local optimisation on the full problem (all free parameters)
    obj = _objective(like, ps, free, {})
    bounds = [(ps.priors[k].lo, ps.priors[k].hi) for k in free]
    steps = np.array([STEPS[k] for k in free])
    best: Candidate | None = None
    refined = []
    for c in starts:
        x0 = []
        vals = dict(zip(search_names, c.x, strict=True))
        for k in free:
            x0.append(vals[k] if k in vals else max(_NUISANCE_START[k], ps.priors[k].lo))
        r = local_refine(obj, np.array(x0), bounds, steps, maxfev=settings.refine_maxfev)
        refined.append(r)
        if best is None or r.fun < best.fun:
            best = r
    assert best is not None
    say("local optimum: " + ", ".join(f"{k}={v:.3f}" for k, v in zip(free, best.x, strict=True)))

    # 3. posterior sampling
    cov0 = numerical_covariance(obj, best.x, steps * 0.5, bounds)
    hessian_ok = cov0 is not None
    if cov0 is None:
        cov0 = np.diag(steps**2)
    n_walkers = max(settings.n_walkers, 2 * len(free) + 2)

    def log_post(x: np.ndarray) -> float:
        v = obj(x)
        return -v if v < 1e29 else -np.inf

    chain = run_emcee(log_post, best.x, cov0, bounds, n_walkers, settings.n_steps,
                      settings.n_burn, seed=settings.seed)
    stats = summarise(chain.samples)
    # best-fit point: the highest posterior seen (optimiser or chain)
    i_max = int(np.argmax(chain.log_prob))
    best_x = chain.samples[i_max] if -chain.log_prob[i_max] < best.fun else best.x
    best_full = ps.full_vector(best_x)
    params: dict[str, ParameterEstimate] = {}
    for i, k in enumerate(PARAMETER_NAMES):
        p = ps.priors[k]
        if k in free:
            j = free.index(k)
            params[k] = ParameterEstimate(k, float(best_full[i]), float(stats["p16"][j]),
                                          float(stats["p50"][j]), float(stats["p84"][j]),
                                          float(stats["mean"][j]), float(stats["std"][j]),
                                          False, p.describe())
        else:
            v = float(p.value)
            params[k] = ParameterEstimate(k, v, v, v, v, v, 0.0, True, p.describe())
    derived = _derived(chain.samples, free, ps)
    terms = like.star_terms(best_full)
    elapsed = time.perf_counter() - t0
    method = (
        f"Bayesian isochrone fit ({interpolator.grid.source}; EEP interpolation in log age and "
        f"[M/H]): per-star likelihood of {'/'.join(data.names)} conditional on "
        f"{data.anchor}, convolved with each star's errors plus a fitted intrinsic scatter "
        f"(>= {settings.model.intrinsic_scatter:g} mag), Kroupa IMF along the isochrone, "
        f"unresolved binaries (flat q in [{settings.model.q_min:g}, 1], fraction fitted), "
        f"field/outlier mixture weighted by membership probability; global search: "
        f"differential evolution x{settings.restarts} + Nelder-Mead; uncertainties: emcee "
        f"(DE/snooker moves), {n_walkers} walkers x {settings.n_steps - settings.n_burn} "
        f"steps after {settings.n_burn} burn-in; 16/50/84th percentiles")
    diagnostics = {
        "acceptance_fraction": chain.acceptance,
        "autocorr_steps": dict(zip(free, chain.autocorr_steps.tolist(), strict=True)),
        "n_effective": chain.n_effective,
        "chain_longer_than_50_tau": bool(np.all(
            (settings.n_steps - settings.n_burn) > 50 * np.nan_to_num(chain.autocorr_steps,
                                                                       nan=np.inf))),
        "hessian_positive_definite": hessian_ok,
        "search_optima": [{"x": dict(zip(search_names, c.x.tolist(), strict=True)),
                           "neg_log_post_soft": c.fun, "origin": c.origin} for c in cands],
        "refined_optima": [{"x": dict(zip(free, r.x.tolist(), strict=True)),
                            "neg_log_post": r.fun} for r in refined],
        "max_log_posterior": float(-min(best.fun, -chain.log_prob[i_max])),
        "likelihood_calls": like.n_calls + like_s.n_calls,
        "seconds": elapsed,
        "expected_cluster_stars": float(np.sum(terms["p_cluster"])),
    }
    data_summary = {"n_stars": data.n_stars, "observables": list(data.names),
                    "anchor": data.anchor, "source": data.source, "notes": data.notes,
                    "anchor_range": list(like.anchor_range),
                    "n_search_stars": sub.n_stars,
                    "sum_p_member": float(np.sum(data.p_member))}
    result = FitResult(
        parameters=params, free=free, covariance=stats["cov"], samples=chain.samples,
        log_prob=chain.log_prob, method=method, derived=derived, diagnostics=diagnostics,
        data_summary=data_summary, isochrones=interpolator.grid.source,
        settings=settings.to_dict(), priors=ps.to_dict(),
        star_probabilities={"p_cluster": terms["p_cluster"], "p_binary": terms["p_binary"],
                            "p_member_in": data.p_member},
        best_isochrone=interpolator.isochrone(best_full[0], best_full[1]),
        star_ids=data.ids, fitted_data=data)
    say(f"fit done in {elapsed:.1f} s: " + ", ".join(
        f"{k}={params[k].p50:.3f}+{params[k].plus:.3f}-{params[k].minus:.3f}"
        for k in ("log_age", "mh", "dm", "ebv")))
    return result


def _derived(samples: np.ndarray, free: tuple[str, ...], ps: PriorSet
             ) -> dict[str, dict[str, float]]:
    """Age (Myr), distance (pc) and A_V (mag) with percentiles, from the samples."""
    n = len(samples)

    def column(name: str) -> np.ndarray:
        if name in free:
            return samples[:, free.index(name)]
        return np.full(n, ps.priors[name].value)

    av_ratio = extinction_ratio("V")
    quantities = {"age_myr": 10.0 ** column("log_age") / 1e6,
                  "distance_pc": 10.0 ** (column("dm") / 5.0 + 1.0),
                  "av": av_ratio * column("ebv")}
    units = {"age_myr": "Myr", "distance_pc": "pc", "av": "mag"}
    out = {}
    for k, v in quantities.items():
        p = np.percentile(v, [16, 50, 84])
        out[k] = {"p16": float(p[0]), "p50": float(p[1]), "p84": float(p[2]),
                  "unit": units[k]}
    out["av"]["note"] = f"A_V = {av_ratio:.3f} E(B-V) (Fitzpatrick 1999, R_V = 3.1)"
    return out
