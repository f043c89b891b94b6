"""The systematic error budget of a cluster fit: how far the answer moves under the choices a
careful analyst could equally have made.

Each *variant* changes one choice and re-optimises the posterior from the main fit's optimum
(Nelder-Mead; no new global search: the variants are small perturbations of one solution). Its
shift from the main optimum, per parameter, enters one *source*:

============== ======================================================== ===================
source         variants                                                 how shifts combine
============== ======================================================== ===================
magnitude      the trusted faint end moved brighter and fainter          subset (below)
range          (:data:`tgpcore.fitting.ranges.TEFF_MIN_VARIANTS`)
bands          without U, where the models' colours (ultraviolet         subset
               bolometric corrections) and the calibration are least
               sure
membership     only stars with p >= 0.5, only p >= 0.9                   subset
binary model   mass ratios flat in [0.5, 1] instead of [0.1, 1]           model
extinction     the other credible extinction model                       model
               (:meth:`~tgpcore.isochrones.reddening.ExtinctionModel.alternative`)
zero point     each observable's zero point moved by its 1 sigma         linear
============== ======================================================== ===================

* **subset**: a variant that fits less (or more) data moves by chance too, by about
  ``sigma_d^2 = |sigma_variant^2 - sigma_stat^2|`` for nested data; ``sigma_variant`` is the
  standard deviation of a short posterior chain of the variant where computed (the bands
  source: without U the posterior is broad and not Gaussian), else
  ``sigma_stat^2 W_main / W_variant`` (W: the summed membership weights of the fitted stars).
  Only the excess counts (Barlow 2002, "Systematic errors: facts and fictions"):
  ``s_v^2 = max(shift^2 - sigma_d^2, 0)``; the source is the RMS of its variants.
* **model**: the shift itself (RMS over the source's variants).
* **linear**: the zero points are nuisance parameters with Gaussian priors; moving each by its
  1 sigma gives the derivative of the answer, and the marginal variance adds
  ``sum_b shift_b^2`` (linear propagation, exact for a posterior that is Gaussian in them).

The sources add in quadrature into the systematic error, which adds in quadrature to the
statistical one (the posterior's) into the total.

One source no variant here can reach: the isochrones themselves. Another PARSEC release (other
bolometric corrections, another interpolation) moves the answer by more than everything above
(0.1 mag in distance modulus is common). Without a second model family offline, it enters as a
measured floor, :data:`MODEL_FLOOR`: clusters drawn from two other PARSEC releases (CMD 3.7 and
CMD 3.3) and fitted with the packaged grid (``benchmarks/measure_model_systematics.py``) need
this much extra error per parameter for the median of |error| / total error to be a
Gaussian's 0.674. The coverage test checks it on 12 other clusters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tgpcore.fitting.data import ClusterPhotometry
from tgpcore.fitting.synthetic import ModelSettings

#: Parameters whose systematic errors are reported.
SYS_PARAMETERS: tuple[str, ...] = ("log_age", "mh", "dm", "ebv")
#: 1-sigma systematic of the isochrone models per parameter (see the module docstring):
#: measured with ``benchmarks/measure_model_systematics.py`` on 8 CMD 3.7 and 8 CMD 3.3
#: clusters (their RMS errors: 0.070 dex, 0.23 mag, 0.025 mag and 0.15 dex, most of which the
#: rest of the budget already covers).
MODEL_FLOOR: dict[str, float] = {"log_age": 0.021, "dm": 0.090, "ebv": 0.0, "mh": 0.077}
MODEL_FLOOR_METHOD = ("isochrone models: a floor measured on clusters drawn from two other "
                      "PARSEC releases (CMD 3.7, CMD 3.3) and fitted with the packaged grid "
                      "(benchmarks/measure_model_systematics.py)")
#: How each source's variants combine (see the module docstring).
COMBINE: dict[str, str] = {"subset": "Barlow-corrected RMS", "model": "RMS of the shifts",
                           "linear": "quadrature sum (linear marginalisation)"}


@dataclass
class Variant:
    """One alternative choice."""

    source: str
    name: str
    data: ClusterPhotometry
    model: ModelSettings
    kind: Literal["subset", "model", "linear"]
    description: str = ""
    shift: dict[str, float] = field(default_factory=dict)
    contribution: dict[str, float] = field(default_factory=dict)
    x: np.ndarray | None = None
    neg_log_post: float = float("nan")
    stat_sigma: dict[str, float] | None = None  # the variant's own statistical 1 sigma


def _weight(data: ClusterPhotometry) -> float:
    return float(np.sum(data.p_member))


def systematic_budget(variants: Sequence[Variant], refit: Callable[[Variant], tuple],
                      x0: dict[str, float], stat_sigma: dict[str, float],
                      main_weight: float, log: Callable[[str], None] | None = None,
                      floor: dict[str, float] | None = None) -> dict:
    """Run the variants and combine their shifts.

    Parameters
    ----------
    variants : sequence of Variant
        The alternatives.
    refit : callable
        ``refit(variant) -> (x, neg_log_post)``: the re-optimised parameters (dict name ->
        value) of a variant.
    x0 : dict
        The main fit's optimum (name -> value).
    stat_sigma : dict
        Statistical 1-sigma of each parameter (posterior).
    main_weight : float
        Summed membership weight of the main fit's stars.
    log : callable, optional
        Progress messages.
    floor : dict, optional
        The isochrone models' floor (:data:`MODEL_FLOOR`), a source of its own.

    Returns
    -------
    dict
        ``sys`` (name -> systematic 1 sigma), ``sources`` (per source: ``sys``, ``combine``,
        ``variants`` with their shifts and contributions), ``method``, ``seconds``.
    """
    say = log or (lambda m: None)
    t0 = time.perf_counter()
    by_source: dict[str, list[Variant]] = {}
    for v in variants:
        x, nlp = refit(v)
        v.neg_log_post = float(nlp)
        v.shift = {k: float(x[k] - x0[k]) for k in SYS_PARAMETERS if k in x and k in x0}
        if v.kind == "subset":
            w = _weight(v.data)
            ratio = main_weight / w if w > 0 else np.inf
            for k, d in v.shift.items():
                s0 = stat_sigma.get(k, 0.0)
                if v.stat_sigma is not None and np.isfinite(v.stat_sigma.get(k, np.nan)):
                    var_d = abs(v.stat_sigma[k] ** 2 - s0**2)
                else:
                    var_d = s0**2 * abs(ratio - 1.0)
                v.contribution[k] = float(np.sign(d) * np.sqrt(max(d * d - var_d, 0.0)))
        else:
            v.contribution = dict(v.shift)
        by_source.setdefault(v.source, []).append(v)
        say(f"systematics: {v.source} / {v.name}: " + ", ".join(
            f"{k} {d:+.3f}" for k, d in v.shift.items()))
    sources = {}
    total = dict.fromkeys(SYS_PARAMETERS, 0.0)
    for src, vs in by_source.items():
        kind = vs[0].kind
        s = {}
        for k in SYS_PARAMETERS:
            c = np.array([v.contribution.get(k, 0.0) for v in vs])
            s[k] = float(np.sqrt(np.sum(c**2)) if kind == "linear" else np.sqrt(np.mean(c**2)))
            total[k] += s[k] ** 2
        sources[src] = {
            "sys": s, "combine": COMBINE[kind],
            "variants": [{"name": v.name, "description": v.description,
                          "n_stars": v.data.n_stars, "shift": v.shift,
                          "contribution": v.contribution,
                          **({"stat_sigma": v.stat_sigma} if v.stat_sigma else {})}
                         for v in vs]}
    if floor:
        sources["isochrone models"] = {"sys": {k: float(floor.get(k, 0.0))
                                               for k in SYS_PARAMETERS},
                                       "combine": "measured floor", "variants": [],
                                       "method": MODEL_FLOOR_METHOD}
        for k in SYS_PARAMETERS:
            total[k] += float(floor.get(k, 0.0)) ** 2
    return {"sys": {k: float(np.sqrt(v)) for k, v in total.items()}, "sources": sources,
            "method": ("variants re-optimised (Nelder-Mead) from the main optimum; per source: "
                       + "; ".join(f"{s}: {d['combine']}" for s, d in sources.items())
                       + "; sources in quadrature"),
            "seconds": time.perf_counter() - t0}
