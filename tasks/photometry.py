"""Task wrappers of the photometry stage: one task per stack, one per cluster catalogue."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tgpcore.photometry.catalog import build_cluster_catalogue, measure_stack


@task(name="stack-photometry", cache_policy=NO_CACHE,
      description="Detect and measure the stars of one stack")
def stack_photometry_task(path: str, out_path: str, config: dict[str, Any] | None = None,
                          airmass: float | None = None) -> dict[str, Any]:
    """Run :func:`tgpcore.photometry.measure_stack`."""
    return measure_stack(path, out_path, config=config, airmass=airmass)


@task(name="cluster-catalogue", cache_policy=NO_CACHE,
      description="Merge short/long stacks, pointings and bands of one cluster")
def cluster_catalogue_task(stacks: dict[str, dict[str, Any]], out_path: str,
                           radius_arcsec: float = 1.0) -> dict[str, Any]:
    """Run :func:`tgpcore.photometry.catalog.build_cluster_catalogue`."""
    return build_cluster_catalogue(stacks, out_path, radius_arcsec=radius_arcsec)
