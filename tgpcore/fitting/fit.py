"""Fit log age, distance modulus, E(B-V) and [M/H] of a cluster, with uncertainties.

Stages:

1. **Global search** on a softened problem: at most ``max_search_stars`` stars (the brightest
   always, the rest drawn by membership weight), intrinsic scatter 0.05 mag so that the
   likelihood has wide basins, the binary fraction held at ``search_f_bin``. Starting points
   come from matching the diagram to a grid of isochrone templates (:mod:`.seeds`); each is
   polished, and differential evolution, restarted ``restarts`` times with different seeds
   and with those points in its population, explores the rest.
2. **The trusted range** (:mod:`.ranges`): on the search's best isochrone, the faint end where
   the models stop describing the stars (main sequence cooler than ``trusted_teff_min``)
   becomes an apparent magnitude limit; fainter stars are not fitted.
3. **Local optimisation** (Nelder-Mead) of each distinct optimum on the full problem (the
   trusted stars, final model, binary fraction and intrinsic scatter free); the best wins.
4. **Statistical uncertainties:** emcee from a ball shaped by the inverse Hessian at the
   optimum, run until the chain is longer than 50 autocorrelation times or ``max_steps``
   (then the fit says it did not converge); the posterior's 16/50/84 percentiles and
   covariance.
5. **Systematic uncertainties** (:mod:`.systematics`): re-optimisations under the magnitude
   range, membership threshold, binary model, extinction model and photometric zero points
   (nuisance parameters, marginalised linearly); stat, sys and total errors per parameter.

Anything a user must know (no convergence, a failed curvature check, a parameter at its
bound, a large systematic error) goes into ``FitResult.warnings``. Any parameter can be fixed
or given a Gaussian prior (:mod:`tgpcore.fitting.priors`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from tgpcore.fitting.data import ClusterPhotometry, trim_faint_incomplete
from tgpcore.fitting.likelihood import PARAMETER_NAMES, ClusterLikelihood
from tgpcore.fitting.priors import Prior, PriorSet, parse_prior
from tgpcore.fitting.ranges import (
    GAIA_COLOUR_G_MAX,
    TEFF_MIN_VARIANTS,
    TRUSTED_TEFF_MIN,
    cut_faint,
    gaia_colour_limit,
    model_anchor_limit,
)
from tgpcore.fitting.result import FitResult, ParameterEstimate
from tgpcore.fitting.sampler import TAU_FACTOR, run_emcee, summarise
from tgpcore.fitting.search import (
    Candidate,
    distinct,
    global_search,
    local_refine,
    numerical_covariance,
)
from tgpcore.fitting.seeds import template_seeds
from tgpcore.fitting.synthetic import ModelSettings
from tgpcore.fitting.systematics import (
    MODEL_FLOOR,
    SYS_PARAMETERS,
    Variant,
    systematic_budget,
)
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
        emcee ensemble size, least number of steps (burn-in included) and burn-in.
    max_steps : int
        Cap of the chain's length: sampling goes on until the chain after burn-in is longer
        than 50 autocorrelation times or this many steps (0: exactly ``n_steps``).
    search_f_bin : float
        Binary fraction during the global search.
    trim_incomplete : bool
        Leave out observables at the faint end where they are incomplete
        (:func:`~tgpcore.fitting.data.trim_faint_incomplete`).
    trusted_teff_min : float or None
        Stars fainter than the main-sequence point of this Teff (K) are not fitted
        (:mod:`tgpcore.fitting.ranges`); None fits every star.
    gaia_colour_g_max : float or None
        Gaia BP/RP are not used fainter than this G (None: at any G).
    systematics : bool
        Compute the systematic error budget (:mod:`tgpcore.fitting.systematics`).
    sys_maxfev : int
        Likelihood calls allowed to each re-optimisation of the budget.
    sys_warn_ratio : float
        A parameter whose systematic error exceeds this many times its statistical one is
        named in the warnings.
    model_floor : bool
        Add the isochrone models' measured systematic floor
        (:data:`tgpcore.fitting.systematics.MODEL_FLOOR`) to the budget.
    adaptive_proposal : bool
        Sample with the independence proposal built from the burn-in
        (:func:`tgpcore.fitting.sampler.run_emcee`); ``False``: differential-evolution moves
        only.
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
    max_steps: int = 1200
    search_f_bin: float = 0.0
    trim_incomplete: bool = True
    trusted_teff_min: float | None = TRUSTED_TEFF_MIN
    gaia_colour_g_max: float | None = GAIA_COLOUR_G_MAX
    systematics: bool = True
    sys_maxfev: int = 220
    sys_warn_ratio: float = 3.0
    adaptive_proposal: bool = True
    model_floor: bool = True
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


def _trusted_data(data: ClusterPhotometry, like: ClusterLikelihood, theta: np.ndarray,
                  teff_min: float, label: str) -> tuple[ClusterPhotometry, float]:
    """The stars no fainter than where the isochrone ``theta``'s main sequence reaches
    ``teff_min``; and that anchor limit (inf if none)."""
    ext = like.extinction if like.extinction is not None else like.ratios
    lim = model_anchor_limit(like.interp, like.bands, like.design, ext, theta, teff_min)
    if not np.isfinite(lim) or lim >= float(np.max(data.values[:, 0])):
        return data, lim
    return cut_faint(data, lim, f"{label}: main sequence cooler than {teff_min:.0f} K, where "
                                "the isochrones stop describing the stars"), lim


def fit_cluster(data: ClusterPhotometry, grid: IsochroneGrid | None = None,
                priors: PriorSet | Mapping[str, Prior | float] | Iterable[str] | None = None,
                settings: FitSettings | None = None,
                interpolator: IsochroneInterpolator | None = None,
                log: Callable[[str], None] | None = None) -> FitResult:
    """Fit a cluster's photometry with isochrones.

    Parameters
    ----------
    data : ClusterPhotometry
        Stars, errors and membership weights (and the zero-point uncertainties of its
        observables, ``data.zero_point_sigma``, for the systematic budget).
    grid : IsochroneGrid, optional
        Isochrones (the packaged PARSEC grid, from its HDF5 cache, by default).
    priors : PriorSet, mapping or iterable of str, optional
        Fixed values and priors (see :func:`build_priors`), e.g. a distance-modulus prior from
        the members' parallax (:func:`tgpcore.fitting.parallax.cluster_parallax_prior`).
    settings : FitSettings, optional
        Search and sampling effort, trusted range, systematics.
    interpolator : IsochroneInterpolator, optional
        Re-use an interpolator (it must carry the bands of ``data``).
    log : callable, optional
        Receives progress messages (and the warnings).

    Returns
    -------
    FitResult
        Estimates of log age, [M/H], distance modulus, E(B-V) and binary fraction with
        16/50/84 percentiles (emcee), statistical, systematic and total errors, covariance,
        derived age/distance/A_V, ``warnings``, diagnostics.
    """
    say = log or (lambda msg: None)
    settings = settings or FitSettings()
    t0 = time.perf_counter()
    if interpolator is None:
        if grid is None:
            from tgpcore.isochrones.store import load_grid

            grid = load_grid()
        interpolator = IsochroneInterpolator(grid, bands=data.bands)
    input_data = data
    if settings.trim_incomplete:
        data = trim_faint_incomplete(data)
    if settings.gaia_colour_g_max is not None:
        data = gaia_colour_limit(data, settings.gaia_colour_g_max)
    ps = build_priors(interpolator, priors, settings.model.intrinsic_scatter)
    free = ps.free
    if not free:
        raise ValueError("every parameter is fixed: nothing to fit")
    if data.n_stars < 5:
        raise ValueError(f"{data.source}: only {data.n_stars} stars with a magnitude and a "
                         "colour: too few to fit")
    rng = np.random.default_rng(settings.seed)
    like_all = ClusterLikelihood(data, interpolator, settings.model)
    sub = _search_subset(data, settings.max_search_stars, rng)
    like_s = ClusterLikelihood(sub, interpolator, settings.search_model)
    search_fill = {"f_bin": settings.search_f_bin,
                   "s_int": settings.search_model.intrinsic_scatter}
    warnings: list[str] = []

    # 1. global search (nuisance parameters held fixed)
    search_names = tuple(k for k in free if k not in search_fill)
    cands: list[Candidate] = []
    if search_names:
        obj_s = _objective(like_s, ps, search_names, search_fill)
        bounds_s = [ps.priors[k].search_bounds() for k in search_names]
        scales = np.array([DISTINCT[k] for k in search_names])
        steps_s = np.array([STEPS[k] for k in search_names]) * 2.0
        seed_x = _template_starts(data, like_all, ps, search_names, settings)
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

    def start_vector(c: Candidate) -> np.ndarray:
        vals = dict(zip(search_names, c.x, strict=True))
        return np.array([vals[k] if k in vals else max(_NUISANCE_START[k], ps.priors[k].lo)
                         for k in free])

    # 2. the trusted range, on the search's best isochrone
    fit_data, a_lim = data, float("inf")
    if settings.trusted_teff_min is not None:
        theta_s = ps.full_vector(start_vector(starts[0]))
        fit_data, a_lim = _trusted_data(data, like_all, theta_s, settings.trusted_teff_min,
                                        "trusted model range")
        if fit_data.n_stars < 20 <= data.n_stars:
            warnings.append(f"only {fit_data.n_stars} stars inside the trusted model range "
                            f"(Teff >= {settings.trusted_teff_min:.0f} K, {data.anchor} <= "
                            f"{a_lim:.2f}): all {data.n_stars} stars fitted instead, beyond "
                            "where the isochrones are reliable")
            fit_data, a_lim = data, float("inf")
        elif fit_data.n_stars < data.n_stars:
            say(f"trusted range: {fit_data.n_stars} of {data.n_stars} stars ({data.anchor} <= "
                f"{a_lim:.2f}, main sequence hotter than {settings.trusted_teff_min:.0f} K)")
    like = ClusterLikelihood(fit_data, interpolator, settings.model) \
        if fit_data is not data else like_all

    # 3. local optimisation on the full problem (all free parameters)
    obj = _objective(like, ps, free, {})
    bounds = [(ps.priors[k].lo, ps.priors[k].hi) for k in free]
    steps = np.array([STEPS[k] for k in free])
    best: Candidate | None = None
    refined = []
    for c in starts:
        r = local_refine(obj, start_vector(c), bounds, steps, maxfev=settings.refine_maxfev)
        refined.append(r)
        if best is None or r.fun < best.fun:
            best = r
    assert best is not None
    say("local optimum: " + ", ".join(f"{k}={v:.3f}" for k, v in zip(free, best.x, strict=True)))
    scales_full = np.array([DISTINCT[k] for k in free])
    rivals = [r for r in refined if r is not best and r.fun < best.fun + 3.0
              and np.any(np.abs(r.x - best.x) > scales_full)]
    for r in rivals:
        warnings.append("a second solution almost as probable (Δ ln p = "
                        f"{r.fun - best.fun:.1f}): " + ", ".join(
                            f"{k}={v:.3f}" for k, v in zip(free, r.x, strict=True)
                            if k in SYS_PARAMETERS))

    # 4. posterior sampling until converged (or the cap)
    cov0 = numerical_covariance(obj, best.x, steps * 0.5, bounds)
    hessian_ok = cov0 is not None
    if cov0 is None:
        cov0 = np.diag(steps**2)
    n_walkers = max(settings.n_walkers, 2 * len(free) + 2)

    def log_post(x: np.ndarray) -> float:
        v = obj(x)
        return -v if v < 1e29 else -np.inf

    chain = run_emcee(log_post, best.x, cov0, bounds, n_walkers, settings.n_steps,
                      settings.n_burn, seed=settings.seed,
                      max_steps=settings.max_steps or None,
                      adapt=settings.adaptive_proposal, min_sd=steps / 20.0)
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
    t_stat = time.perf_counter() - t0

    # 5. systematic error budget
    systematics: dict = {}
    if settings.systematics:
        variants = _variants(fit_data, data, like, best_full, ps, settings)

        def refit(v: Variant) -> tuple[dict[str, float], float]:
            lv = ClusterLikelihood(v.data, interpolator, v.model)
            ov = _objective(lv, ps, free, {})
            r = local_refine(ov, best.x, bounds, steps * 0.5, maxfev=settings.sys_maxfev)
            v.x = r.x
            if v.source == "bands":
                # its own (larger) statistical error from a short chain: without a band the
                # posterior is broad and far from Gaussian, where the curvature at the optimum
                # understates it several times
                def lp_v(x: np.ndarray) -> float:
                    f = ov(x)
                    return -f if f < 1e29 else -np.inf

                cv = run_emcee(lp_v, r.x, 9.0 * np.atleast_2d(stats["cov"]), bounds, n_walkers,
                               140, 60, seed=settings.seed + 1,
                               adapt=settings.adaptive_proposal, min_sd=steps / 20.0)
                sd = cv.samples.std(axis=0, ddof=1)
                v.stat_sigma = {k: float(sd[i]) for i, k in enumerate(free)}
            like.n_calls += lv.n_calls
            return dict(zip(PARAMETER_NAMES, ps.full_vector(r.x), strict=True)), r.fun

        x0 = dict(zip(PARAMETER_NAMES, ps.full_vector(best.x), strict=True))
        systematics = systematic_budget(
            variants, refit, x0, {k: params[k].stat for k in SYS_PARAMETERS},
            float(np.sum(fit_data.p_member)), log=say,
            floor=_model_floor(ps) if settings.model_floor else None)
        for k in SYS_PARAMETERS:
            if params[k].fixed:
                continue
            params[k].sys = systematics["sys"][k]
            params[k].sys_terms = {src: d["sys"][k] for src, d in
                                   systematics["sources"].items()}
    derived = _derived(chain.samples, free, ps)
    terms = like.star_terms(best_full)
    elapsed = time.perf_counter() - t0

    # 6. what the user must be told
    tau_max = float(np.nanmax(chain.autocorr_steps)) if np.isfinite(
        chain.autocorr_steps).any() else float("nan")
    n_post = chain.n_steps - chain.n_burn
    if not chain.converged:
        warnings.append(
            f"the posterior sampling did not converge: {n_post} steps after burn-in are "
            + (f"{n_post / tau_max:.0f}" if np.isfinite(tau_max) else "an unknown number of")
            + f" autocorrelation times (< {TAU_FACTOR:.0f}; cap {chain.n_steps} steps "
            "reached): the statistical errors are approximate")
    if not hessian_ok:
        warnings.append("curvature check failed: the Hessian at the optimum is not positive "
                        "definite (a parameter at a bound, a ridge or another optimum); "
                        "check the corner plot")
    for k in SYS_PARAMETERS:
        p, pr = params[k], ps.priors[k]
        if p.fixed:
            continue
        width = max(p.p84 - p.p16, 1e-9)
        if p.p16 - pr.lo < 0.05 * width or pr.hi - p.p84 < 0.05 * width:
            bound = pr.lo if p.p16 - pr.lo < 0.05 * width else pr.hi
            warnings.append(f"{k} runs into its bound {bound:g}: its interval is one-sided")
        # the analysis choices (not the models' fixed floor) moving the answer a lot
        choice = {src: v for src, v in p.sys_terms.items() if src != "isochrone models"}
        s_choice = float(np.sqrt(sum(v * v for v in choice.values())))
        if choice and s_choice > settings.sys_warn_ratio * max(p.stat, 1e-12):
            src = max(choice, key=choice.get)
            warnings.append(f"{k}: the analysis choices move it by {s_choice:.3f}, "
                            f"{s_choice / max(p.stat, 1e-12):.0f} times its statistical error "
                            f"({p.stat:.3f}); largest: {src} ({choice[src]:.3f})")
    for w in warnings:
        say("WARNING: " + w)
    ext_text = like.extinction.describe() if like.extinction is not None else \
        "constant A_band/E(B-V) given by the caller"
    method = (
        f"Bayesian isochrone fit ({interpolator.grid.source}; EEP interpolation in log age and "
        f"[M/H]): per-star likelihood of {'/'.join(data.names)} conditional on "
        f"{data.anchor}, convolved with each star's errors plus a fitted intrinsic scatter "
        f"(>= {settings.model.intrinsic_scatter:g} mag), Kroupa IMF along the isochrone, "
        f"unresolved binaries (flat q in [{settings.model.q_min:g}, 1], fraction fitted), "
        f"field/outlier mixture weighted by membership probability; {ext_text}; stars "
        + (f"within the trusted model range (main sequence hotter than "
           f"{settings.trusted_teff_min:.0f} K: {data.anchor} <= {a_lim:.2f})"
           if np.isfinite(a_lim) else "at all magnitudes")
        + f"; global search: differential evolution x{settings.restarts} + Nelder-Mead; "
        f"uncertainties: emcee (DE/snooker moves), {n_walkers} walkers x {n_post} steps after "
        f"{settings.n_burn} burn-in (run to > {TAU_FACTOR:.0f} autocorrelation times, cap "
        f"{settings.max_steps}); 16/50/84th percentiles; systematic budget: "
        + (systematics.get("method", "") if systematics else "not computed"))
    diagnostics = {
        "acceptance_fraction": chain.acceptance,
        "autocorr_steps": dict(zip(free, chain.autocorr_steps.tolist(), strict=True)),
        "n_effective": chain.n_effective,
        "chain_steps": chain.n_steps,
        "chain_cap_steps": settings.max_steps,
        "chain_longer_than_50_tau": chain.converged,
        "converged": bool(chain.converged),
        "hessian_positive_definite": hessian_ok,
        "search_optima": [{"x": dict(zip(search_names, c.x.tolist(), strict=True)),
                           "neg_log_post_soft": c.fun, "origin": c.origin} for c in cands],
        "refined_optima": [{"x": dict(zip(free, r.x.tolist(), strict=True)),
                            "neg_log_post": r.fun} for r in refined],
        "max_log_posterior": float(-min(best.fun, -chain.log_prob[i_max])),
        "likelihood_calls": like.n_calls + like_s.n_calls + (
            like_all.n_calls if like_all is not like else 0),
        "seconds": elapsed,
        "seconds_statistical": t_stat,
        "expected_cluster_stars": float(np.sum(terms["p_cluster"])),
    }
    data_summary = {"n_stars": fit_data.n_stars, "n_input_stars": input_data.n_stars,
                    "observables": list(data.names),
                    "anchor": data.anchor, "source": data.source, "notes": fit_data.notes,
                    "anchor_range": list(like.anchor_range),
                    "trusted_range": {"teff_min": settings.trusted_teff_min,
                                      "anchor_max": a_lim if np.isfinite(a_lim) else None,
                                      "gaia_colour_g_max": settings.gaia_colour_g_max,
                                      "n_before": data.n_stars, "n_fitted": fit_data.n_stars},
                    "zero_point_sigma": dict(fit_data.zero_point_sigma),
                    "n_search_stars": sub.n_stars,
                    "sum_p_member": float(np.sum(fit_data.p_member))}
    errors_method = {
        "stat": "posterior (emcee): half the 16-84th percentile interval; err_minus/err_plus "
                "are p50-p16 and p84-p50",
        "sys": systematics.get("method", "not computed") if systematics else "not computed",
        "total": "stat and sys in quadrature: err_total = hypot(err_stat, err_sys); the total "
                 "68 % interval is [p50 - hypot(err_minus, err_sys), p50 + hypot(err_plus, "
                 "err_sys)]"}
    result = FitResult(
        parameters=params, free=free, covariance=stats["cov"], samples=chain.samples,
        log_prob=chain.log_prob, method=method, derived=derived, diagnostics=diagnostics,
        data_summary=data_summary, isochrones=interpolator.grid.source,
        settings=settings.to_dict(), priors=ps.to_dict(),
        star_probabilities={"p_cluster": terms["p_cluster"], "p_binary": terms["p_binary"],
                            "p_member_in": fit_data.p_member},
        best_isochrone=interpolator.isochrone(best_full[0], best_full[1]),
        star_ids=fit_data.ids, fitted_data=fit_data, warnings=warnings,
        systematics=systematics, errors_method=errors_method, input_data=data,
        extinction_model=like.extinction)
    say(f"fit done in {elapsed:.1f} s: " + ", ".join(
        f"{k}={params[k].p50:.3f}±{params[k].stat:.3f}(stat)±{params[k].sys:.3f}(sys)"
        for k in ("log_age", "mh", "dm", "ebv")))
    return result


def _model_floor(ps: PriorSet) -> dict[str, float]:
    """The isochrone models' floor (:data:`MODEL_FLOOR`). With a Gaussian prior on the
    distance modulus (a parallax), the distance no longer rests on the models alone: the
    floor of (m-M)0 becomes that of two independent estimates combined, the photometric one
    (model floor f) and the prior (sigma_p): f sigma_p / hypot(f, sigma_p)."""
    out = dict(MODEL_FLOOR)
    p = ps.priors["dm"]
    if p.kind == "gaussian" and out.get("dm", 0.0) > 0:
        f = out["dm"]
        out["dm"] = f * p.sigma / float(np.hypot(f, p.sigma))
    elif p.kind == "fixed":
        out["dm"] = 0.0
    return out


def _variants(fit_data: ClusterPhotometry, data: ClusterPhotometry, like: ClusterLikelihood,
              theta: np.ndarray, ps: PriorSet, settings: FitSettings) -> list[Variant]:
    """The alternative choices of the systematic budget (:mod:`.systematics`)."""
    out: list[Variant] = []
    n_min = max(20, int(0.1 * fit_data.n_stars))
    if settings.trusted_teff_min is not None:
        seen = {fit_data.n_stars}
        for label, teff in TEFF_MIN_VARIANTS.items():
            d, lim = _trusted_data(data, like, theta, teff, f"{label} range")
            if d.n_stars in seen or d.n_stars < n_min:
                continue
            seen.add(d.n_stars)
            out.append(Variant("magnitude range", f"{label}: main sequence >= {teff:.0f} K",
                               d, settings.model, "subset",
                               f"{d.n_stars} stars, {data.anchor} <= {lim:.2f}"))
    if "U" in fit_data.names and len(fit_data.names) >= 3:
        j = fit_data.names.index("U")
        values, errors = fit_data.values.copy(), fit_data.errors.copy()
        values[:, j] = np.nan
        errors[:, j] = np.nan
        keep = np.isfinite(values[:, 1:]).any(axis=1)
        no_u = ClusterPhotometry(fit_data.names, values[keep], errors[keep],
                                 fit_data.p_member[keep],
                                 None if fit_data.ids is None else fit_data.ids[keep],
                                 fit_data.source, list(fit_data.notes),
                                 dict(fit_data.zero_point_sigma))
        out.append(Variant("bands", "without U", no_u, settings.model, "subset",
                           "U's colours depend most on the models' ultraviolet bolometric "
                           "corrections and on the calibration"))
    seen = {fit_data.n_stars}
    for thr in (0.5, 0.9):
        keep = np.flatnonzero(fit_data.p_member >= thr)
        if len(keep) in seen or len(keep) < n_min:
            continue
        seen.add(len(keep))
        out.append(Variant("membership", f"p_member >= {thr:g}", fit_data.subset(keep),
                           settings.model, "subset", f"{len(keep)} stars"))
    fb = ps.priors["f_bin"]
    if not (fb.kind == "fixed" and fb.value == 0.0):
        out.append(Variant("binary model", "mass ratio flat in [0.5, 1]", fit_data,
                           replace(settings.model, q_min=0.5), "model",
                           "instead of flat in [0.1, 1]"))
    if like.extinction is not None and settings.model.colour_dependent_extinction:
        alt = like.extinction.alternative()
        out.append(Variant("extinction", alt.describe(), fit_data,
                           replace(settings.model, extinction_law=alt.law,
                                   gaia_extinction=alt.gaia), "model"))
    for name, sig in fit_data.zero_point_sigma.items():
        if name in fit_data.names and sig > 0:
            out.append(Variant("zero point", f"{name} {sig:+.3f} mag",
                               fit_data.shifted({name: sig}), settings.model, "linear",
                               "1 sigma of the zero point"))
    return out


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
    out["av"]["note"] = (f"A_V = {av_ratio:.3f} E(B-V) (Fitzpatrick 1999, R_V = 3.1, a 10000 K "
                         "star)")
    for v in out.values():
        v["errors"] = "statistical only (posterior); the parameters carry the total errors"
    return out
