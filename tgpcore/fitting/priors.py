"""Priors of the cluster parameters: bounds, Gaussian priors, fixed values.

Every parameter of :data:`~tgpcore.fitting.likelihood.PARAMETER_NAMES` (log age, [M/H],
distance modulus, E(B-V), and the nuisance binary fraction and intrinsic scatter) has one
:class:`Prior`: uniform between
bounds (the default), Gaussian (truncated to the bounds), or fixed. Command lines and flow
parameters give them as text (:func:`parse_prior`): ``mh=0.0`` fixes [M/H],
``dm=9.65+-0.05`` is a Gaussian prior, ``log_age=9.0:9.8`` narrows the bounds.
:func:`dm_prior_from_parallax` turns a cluster parallax into a distance-modulus prior.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np

from tgpcore.fitting.likelihood import PARAMETER_NAMES

#: Default hard bounds (the age and [M/H] bounds are further clipped to the isochrone grid).
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "log_age": (6.6, 10.13), "mh": (-2.2, 0.6), "dm": (0.0, 20.0), "ebv": (0.0, 3.0),
    "f_bin": (0.0, 0.9), "s_int": (0.0, 0.15),
}
#: Parameter aliases accepted in text (``feh`` for [M/H], ``age`` for log age, ...).
ALIASES: dict[str, str] = {"age": "log_age", "logage": "log_age", "log_age": "log_age",
                           "mh": "mh", "feh": "mh", "m_h": "mh", "[m/h]": "mh", "[fe/h]": "mh",
                           "dm": "dm", "dm0": "dm", "distmod": "dm", "ebv": "ebv",
                           "e_bv": "ebv", "e(b-v)": "ebv", "fbin": "f_bin", "f_bin": "f_bin",
                           "binary_fraction": "f_bin", "s_int": "s_int", "sint": "s_int",
                           "scatter": "s_int", "intrinsic_scatter": "s_int"}


@dataclass(frozen=True)
class Prior:
    """The prior of one parameter.

    Attributes
    ----------
    kind : {'uniform', 'gaussian', 'fixed'}
        Uniform in [lo, hi], Gaussian N(mu, sigma) truncated to [lo, hi], or a fixed value.
    lo, hi : float
        Hard bounds.
    mu, sigma : float
        Gaussian centre and width (``kind == 'gaussian'``).
    value : float
        The fixed value (``kind == 'fixed'``).
    note : str
        Where the prior came from (e.g. "Gaia parallax 1.15 ± 0.01 mas").
    """

    kind: Literal["uniform", "gaussian", "fixed"] = "uniform"
    lo: float = -math.inf
    hi: float = math.inf
    mu: float = math.nan
    sigma: float = math.nan
    value: float = math.nan
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("uniform", "gaussian", "fixed"):
            raise ValueError(f"unknown prior kind {self.kind!r}")
        if self.kind == "gaussian" and not (self.sigma > 0):
            raise ValueError("a Gaussian prior needs sigma > 0")
        if self.kind == "fixed" and not math.isfinite(self.value):
            raise ValueError("a fixed parameter needs a finite value")
        if self.lo >= self.hi:
            raise ValueError(f"empty prior range [{self.lo}, {self.hi}]")

    def logpdf(self, x: float) -> float:
        """log prior density (unnormalised; -inf outside the bounds)."""
        if not self.lo <= x <= self.hi:
            return -math.inf
        if self.kind == "gaussian":
            return -0.5 * ((x - self.mu) / self.sigma) ** 2
        return 0.0

    def search_bounds(self) -> tuple[float, float]:
        """Bounds for the global search: the hard bounds, narrowed to mu ± 5 sigma."""
        if self.kind == "gaussian":
            return max(self.lo, self.mu - 5 * self.sigma), min(self.hi, self.mu + 5 * self.sigma)
        return self.lo, self.hi

    def describe(self) -> str:
        """One line for reports."""
        text = {"uniform": f"uniform [{self.lo:g}, {self.hi:g}]",
                "gaussian": f"Gaussian {self.mu:g} ± {self.sigma:g} in [{self.lo:g}, {self.hi:g}]",
                "fixed": f"fixed at {self.value:g}"}[self.kind]
        return text + (f" ({self.note})" if self.note else "")

    def to_dict(self) -> dict:
        """Plain data (non-finite numbers as None)."""
        return {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                for k, v in asdict(self).items()}


@dataclass
class PriorSet:
    """Priors of all parameters, in :data:`PARAMETER_NAMES` order."""

    priors: dict[str, Prior] = field(default_factory=lambda: {
        k: Prior("uniform", *DEFAULT_BOUNDS[k]) for k in PARAMETER_NAMES})

    @classmethod
    def default(cls, age_range: tuple[float, float] | None = None,
                mh_range: tuple[float, float] | None = None,
                scatter_floor: float | None = None) -> PriorSet:
        """Uniform priors within :data:`DEFAULT_BOUNDS`, age and [M/H] clipped to a grid, the
        intrinsic scatter to the model's resolution."""
        ps = cls()
        if scatter_floor is not None:
            ps.priors["s_int"] = Prior("uniform", scatter_floor, DEFAULT_BOUNDS["s_int"][1])
        if age_range is not None:
            lo, hi = DEFAULT_BOUNDS["log_age"]
            ps.priors["log_age"] = Prior("uniform", max(lo, age_range[0]), min(hi, age_range[1]))
        if mh_range is not None:
            ps.priors["mh"] = Prior("uniform", mh_range[0], mh_range[1])
        return ps

    def set(self, name: str, prior: Prior) -> PriorSet:
        """Replace one parameter's prior, keeping the tighter of the hard bounds."""
        name = canonical_name(name)
        old = self.priors[name]
        lo, hi = max(old.lo, prior.lo), min(old.hi, prior.hi)
        if prior.kind == "fixed":
            if not old.lo <= prior.value <= old.hi:
                raise ValueError(f"{name} fixed at {prior.value} outside [{old.lo}, {old.hi}]")
            lo, hi = old.lo, old.hi
        if lo >= hi:
            raise ValueError(f"{name}: prior range [{prior.lo}, {prior.hi}] misses "
                             f"[{old.lo}, {old.hi}]")
        self.priors[name] = replace(prior, lo=lo, hi=hi)
        return self

    @property
    def free(self) -> tuple[str, ...]:
        """Names of the parameters that are not fixed."""
        return tuple(k for k in PARAMETER_NAMES if self.priors[k].kind != "fixed")

    def full_vector(self, free_values: np.ndarray) -> np.ndarray:
        """All parameters from the free ones (fixed ones filled in)."""
        out = np.empty(len(PARAMETER_NAMES))
        it = iter(np.asarray(free_values, float))
        for i, k in enumerate(PARAMETER_NAMES):
            p = self.priors[k]
            out[i] = p.value if p.kind == "fixed" else next(it)
        return out

    def logprior(self, full: np.ndarray) -> float:
        """Sum of the log priors of a full parameter vector (fixed ones are not counted)."""
        total = 0.0
        for k, x in zip(PARAMETER_NAMES, full, strict=True):
            p = self.priors[k]
            if p.kind != "fixed":
                total += p.logpdf(float(x))
                if total == -math.inf:
                    return total
        return total

    def search_bounds(self) -> list[tuple[float, float]]:
        """Bounds of the free parameters for the global search."""
        return [self.priors[k].search_bounds() for k in self.free]

    def to_dict(self) -> dict:
        """Plain data, with a readable description per parameter."""
        return {k: {**p.to_dict(), "text": p.describe()} for k, p in self.priors.items()}


def canonical_name(name: str) -> str:
    """The parameter name for an alias (``feh`` -> ``mh``); KeyError if unknown."""
    key = name.strip().lower()
    if key not in ALIASES:
        raise KeyError(f"unknown parameter {name!r}; use one of {', '.join(PARAMETER_NAMES)}")
    return ALIASES[key]


def parse_prior(spec: str) -> tuple[str, Prior]:
    """A prior from text.

    Parameters
    ----------
    spec : str
        ``name=value`` (fixed), ``name=mu+-sigma`` or ``name=mu±sigma`` (Gaussian),
        ``name=lo:hi`` (uniform bounds).

    Returns
    -------
    (str, Prior)
        Canonical parameter name and its prior.
    """
    if "=" not in spec:
        raise ValueError(f"prior {spec!r}: expected name=value, name=mu+-sigma or name=lo:hi")
    name, text = (s.strip() for s in spec.split("=", 1))
    name = canonical_name(name)
    text = text.replace("±", "+-")
    try:
        if "+-" in text:
            mu, sigma = (float(v) for v in text.split("+-"))
            return name, Prior("gaussian", mu=mu, sigma=sigma)
        if ":" in text:
            lo, hi = (float(v) for v in text.split(":"))
            return name, Prior("uniform", lo, hi)
        return name, Prior("fixed", value=float(text))
    except ValueError as exc:
        raise ValueError(f"prior {spec!r}: {exc}") from exc


def dm_prior_from_parallax(parallax_mas: float, parallax_error_mas: float,
                           zero_point_mas: float = -0.017) -> Prior:
    """A Gaussian prior on the distance modulus from a cluster's mean parallax.

    Parameters
    ----------
    parallax_mas, parallax_error_mas : float
        Mean parallax and its uncertainty (mas); add a systematic floor (~0.01 mas for Gaia
        DR3) to the error yourself if the statistical one is smaller.
    zero_point_mas : float
        Parallax zero point subtracted first (Gaia DR3: -0.017 mas, Lindegren et al. 2021).

    Returns
    -------
    Prior
        N(10 - 5 log10(plx), 5/ln10 * sigma_plx / plx), first order in sigma_plx / plx.
    """
    plx = parallax_mas - zero_point_mas
    if plx <= 0 or parallax_error_mas <= 0:
        raise ValueError("need a positive parallax and error")
    mu = 10.0 - 5.0 * math.log10(plx)
    sigma = 5.0 / math.log(10.0) * parallax_error_mas / plx
    return Prior("gaussian", mu=mu, sigma=sigma,
                 note=f"parallax {parallax_mas:.4f} ± {parallax_error_mas:.4f} mas, zero point "
                      f"{zero_point_mas:+.3f} mas")
