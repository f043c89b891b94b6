"""Isochrone fitting: log age, distance modulus, E(B-V) and [M/H] of a cluster, with honest
uncertainties.

>>> from tgpcore.fitting import photometry_from_table, fit_cluster   # doctest: +SKIP
>>> result = fit_cluster(photometry_from_table(catalog), priors=["mh=0.0"])  # doctest: +SKIP
>>> result.parameters["log_age"].p50, result.parameters["log_age"].total  # doctest: +SKIP
>>> compare_fits(johnson_result, gaia_result)["alarm"]  # doctest: +SKIP
"""

from tgpcore.fitting.compare import compare_fits
from tgpcore.fitting.data import (
    ClusterPhotometry,
    join_members,
    match_members,
    photometry_from_table,
)
from tgpcore.fitting.fit import FitSettings, build_priors, fit_cluster
from tgpcore.fitting.likelihood import PARAMETER_NAMES, ClusterLikelihood
from tgpcore.fitting.parallax import ClusterParallax, cluster_parallax_prior
from tgpcore.fitting.priors import Prior, PriorSet, dm_prior_from_parallax, parse_prior
from tgpcore.fitting.result import FitResult, ParameterEstimate, read_fit_hdf5
from tgpcore.fitting.synthetic import ModelSettings

__all__ = [
    "PARAMETER_NAMES",
    "ClusterLikelihood",
    "ClusterParallax",
    "ClusterPhotometry",
    "FitResult",
    "FitSettings",
    "ModelSettings",
    "ParameterEstimate",
    "Prior",
    "PriorSet",
    "build_priors",
    "cluster_parallax_prior",
    "compare_fits",
    "dm_prior_from_parallax",
    "fit_cluster",
    "join_members",
    "match_members",
    "parse_prior",
    "photometry_from_table",
    "read_fit_hdf5",
]
