"""Task wrapper of the isochrone-fit stage: catalogue (and members) in, ``fit.json``,
``fit.h5`` and figures out (:func:`tgpcore.fitting.run.run_isochrone_fit`)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tgpcore.fitting.run import run_isochrone_fit


@task(name="isochrone-fit", cache_policy=NO_CACHE,
      description="Fit age, distance, reddening and [M/H] of a cluster with isochrones")
def isochrone_fit_task(catalog_path: str, out_dir: str, members_path: str | None = None,
                       system: str = "auto", priors: list[str] | None = None,
                       parallax: tuple[float, float] | None = None,
                       isochrones: str | None = None, cache_dir: str | None = None,
                       options: dict[str, Any] | None = None,
                       plots: bool = True, extras: dict[str, Any] | None = None
                       ) -> dict[str, Any]:
    """Run :func:`tgpcore.fitting.run.run_isochrone_fit`, logging its progress; ``extras``
    are its further keyword arguments (``parallax_prior``, ``zero_points``,
    ``match_radius_arcsec``)."""
    logger = get_run_logger()
    return run_isochrone_fit(catalog_path, out_dir, members_path, system, priors, parallax,
                             isochrones, cache_dir, options, plots, log=logger.info,
                             **(extras or {}))
