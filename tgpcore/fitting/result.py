"""The outcome of a cluster fit: estimates with uncertainties, and its files.

``fit.json`` holds, per parameter (``log_age``, ``dm``, ``ebv``, ``mh`` and the nuisance
``f_bin`` and ``s_int``), the best fit, the posterior's 16th/50th/84th percentiles, mean and standard
deviation, whether it was fixed and its prior; the posterior covariance of the free
parameters; derived quantities (age in Myr, distance in pc, A_V); the method; diagnostics of the
search and of the sampler; and what data were fitted. ``fit.h5`` adds the posterior samples, the
best-fit isochrone and each star's probability of following the isochrone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from astropy.table import Table

from tgpcore import __version__
from tgpcore.io.atomic import atomic_path, atomic_write_bytes
from tgpcore.io.jsonready import json_ready

#: Units of the parameters.
UNITS: dict[str, str] = {"log_age": "dex (log10 yr)", "mh": "dex", "dm": "mag", "ebv": "mag",
                         "f_bin": "", "s_int": "mag"}
#: Parameters that ``fit.json`` must report.
REPORTED: tuple[str, ...] = ("log_age", "dm", "ebv", "mh")


@dataclass
class ParameterEstimate:
    """One parameter's estimate."""

    name: str
    best: float
    p16: float
    p50: float
    p84: float
    mean: float
    std: float
    fixed: bool
    prior: str
    sys: float = 0.0
    sys_terms: dict[str, float] = field(default_factory=dict)

    @property
    def minus(self) -> float:
        """p50 - p16 (statistical)."""
        return self.p50 - self.p16

    @property
    def plus(self) -> float:
        """p84 - p50 (statistical)."""
        return self.p84 - self.p50

    @property
    def stat(self) -> float:
        """Statistical 1 sigma: half the posterior's 16-84 % interval."""
        return 0.5 * (self.p84 - self.p16)

    @property
    def total(self) -> float:
        """Total 1 sigma: statistical and systematic in quadrature."""
        return math.hypot(self.stat, self.sys)

    @property
    def total_p16(self) -> float:
        """Lower end of the total 68 % interval (p50 - hypot(minus, sys))."""
        return self.p50 - math.hypot(self.minus, self.sys)

    @property
    def total_p84(self) -> float:
        """Upper end of the total 68 % interval (p50 + hypot(plus, sys))."""
        return self.p50 + math.hypot(self.plus, self.sys)

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"best": self.best, "p16": self.p16, "p50": self.p50, "p84": self.p84,
                "mean": self.mean, "std": self.std, "err_minus": self.minus,
                "err_plus": self.plus, "err_stat": self.stat, "err_sys": self.sys,
                "err_total": self.total, "total_p16": self.total_p16,
                "total_p84": self.total_p84, "sys_terms": dict(self.sys_terms),
                "fixed": self.fixed, "unit": UNITS[self.name], "prior": self.prior}


@dataclass
class FitResult:
    """Everything a cluster fit produced."""

    parameters: dict[str, ParameterEstimate]
    free: tuple[str, ...]
    covariance: np.ndarray
    samples: np.ndarray
    log_prob: np.ndarray
    method: str
    derived: dict[str, dict[str, float]]
    diagnostics: dict[str, Any]
    data_summary: dict[str, Any]
    isochrones: str
    settings: dict[str, Any]
    priors: dict[str, Any]
    star_probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    best_isochrone: Table | None = None
    star_ids: np.ndarray | None = None
    fitted_data: Any = None  # the ClusterPhotometry actually fitted (after trimming)
    warnings: list[str] = field(default_factory=list)
    systematics: dict[str, Any] = field(default_factory=dict)
    parallax_prior: dict[str, Any] = field(default_factory=dict)
    errors_method: dict[str, str] = field(default_factory=dict)
    input_data: Any = None  # the ClusterPhotometry given (before the trusted range)
    extinction_model: Any = None  # the ExtinctionModel of the fit (for figures)

    def value(self, name: str) -> float:
        """Posterior median of a parameter."""
        return self.parameters[name].p50

    def to_dict(self) -> dict[str, Any]:
        """The content of ``fit.json`` (no samples)."""
        out: dict[str, Any] = {"warnings": list(self.warnings),
                               "converged": bool(self.diagnostics.get("converged", False))}
        out.update({name: self.parameters[name].to_dict() for name in REPORTED})
        out.update({
            "errors_method": dict(self.errors_method),
            "systematics": self.systematics,
            "parallax_prior": self.parallax_prior or {"used": False},
            "nuisance": {k: self.parameters[k].to_dict() for k in ("f_bin", "s_int")},
            "covariance": {"parameters": list(self.free),
                           "matrix": self.covariance.tolist()},
            "derived": self.derived,
            "method": self.method,
            "isochrones": self.isochrones,
            "data": self.data_summary,
            "diagnostics": self.diagnostics,
            "priors": self.priors,
            "settings": self.settings,
            "software_version": __version__,
        })
        return json_ready(out)

    def summary(self) -> dict[str, float]:
        """Flat numbers for the run database, tables and the console: ``<name>``,
        ``<name>_p16``, ``<name>_p84``, ``<name>_err`` (total 1 sigma), ``<name>_err_stat``,
        ``<name>_err_sys`` per parameter, star count, n_effective, ``converged`` (1/0),
        ``parallax_prior_used`` (1/0) and ``n_warnings`` (the warnings' text is
        :attr:`warnings`; every value here is a number, fit for the run database)."""
        out: dict[str, float] = {}
        for name in (*REPORTED, "f_bin", "s_int"):
            p = self.parameters[name]
            out[name] = p.p50
            out[f"{name}_p16"] = p.p16
            out[f"{name}_p84"] = p.p84
            out[f"{name}_err"] = p.total
            out[f"{name}_err_stat"] = p.stat
            out[f"{name}_err_sys"] = p.sys
        out["n_stars"] = float(self.data_summary.get("n_stars", 0))
        out["n_effective"] = float(self.diagnostics.get("n_effective", float("nan")))
        out["converged"] = float(bool(self.diagnostics.get("converged", False)))
        out["parallax_prior_used"] = float(bool((self.parallax_prior or {}).get("used")))
        out["n_warnings"] = float(len(self.warnings))
        return out

    def write_json(self, path: str | Path) -> Path:
        """Write ``fit.json`` atomically."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        return atomic_write_bytes(path, text.encode() + b"\n")

    def write_hdf5(self, path: str | Path) -> Path:
        """Write ``fit.h5`` atomically: ``/summary`` (the JSON as an attribute), ``/posterior``
        (samples, log_prob, parameter names), ``/best_isochrone`` (one dataset per column) and
        ``/stars`` (ids and probabilities)."""
        path = Path(path)
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
            h5.attrs["fit_json"] = json.dumps(self.to_dict())
            h5.attrs["software_version"] = __version__
            post = h5.create_group("posterior")
            post.create_dataset("samples", data=self.samples, compression="gzip")
            post.create_dataset("log_prob", data=self.log_prob, compression="gzip")
            post.attrs["parameters"] = json.dumps(list(self.free))
            post.attrs["method"] = self.method
            if self.best_isochrone is not None:
                g = h5.create_group("best_isochrone")
                for c in self.best_isochrone.colnames:
                    g.create_dataset(c, data=np.asarray(self.best_isochrone[c]))
            stars = h5.create_group("stars")
            if self.star_ids is not None:
                ids = np.asarray(self.star_ids)
                stars.create_dataset("id", data=ids.astype("S") if ids.dtype.kind in "UO"
                                     else ids)
            for k, v in self.star_probabilities.items():
                stars.create_dataset(k, data=np.asarray(v))
        return path


def read_fit_hdf5(path: str | Path) -> dict[str, Any]:
    """Read back ``fit.h5``: the summary dict, ``samples`` and ``parameters``."""
    with h5py.File(path, "r") as h5:
        out = json.loads(h5.attrs["fit_json"])
        out["samples"] = h5["posterior/samples"][()]
        out["sample_parameters"] = json.loads(h5["posterior"].attrs["parameters"])
        out["stars"] = {k: h5["stars"][k][()] for k in h5["stars"]}
    return out
