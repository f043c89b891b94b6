"""Task wrappers of the registration stage: reference per pointing, alignment per frame,
one stack per (pointing, filter, exposure class), one mosaic per (cluster, filter)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tgpcore.registration import (
    align_to_reference,
    make_stack,
    prepare_reference,
    refine_xcorr_alignments,
)
from tgpcore.registration.mosaic import make_mosaic


@task(name="choose-reference", cache_policy=NO_CACHE,
      description="Pick the reference frame of a pointing (all filters)")
def reference_task(paths: list[str], fwhm_px: float | None = None) -> dict[str, Any]:
    """Run :func:`tgpcore.registration.prepare_reference`."""
    return prepare_reference(paths, fwhm_px=fwhm_px)


@task(name="align-frame", cache_policy=NO_CACHE, description="Align one frame to its reference")
def align_task(path: str, reference: dict[str, Any], fwhm_px: float | None = None,
               max_residual_px: float = 0.5) -> dict[str, Any]:
    """Run :func:`tgpcore.registration.align_to_reference`."""
    return align_to_reference(path, reference, fwhm_px=fwhm_px, max_residual_px=max_residual_px)


@task(name="refine-xcorr", cache_policy=NO_CACHE,
      description="Re-measure cross-correlation shifts with the static pattern removed")
def refine_xcorr_task(alignments: list[dict[str, Any]], reference: dict[str, Any]
                      ) -> list[dict[str, Any]]:
    """Run :func:`tgpcore.registration.refine_xcorr_alignments`."""
    return refine_xcorr_alignments(alignments, reference)


@task(name="stack", cache_policy=NO_CACHE, description="Stack one pointing/filter/exposure class")
def stack_task(alignments: list[dict[str, Any]], shape: list[int], out_path: str, label: str,
               stack_kw: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`tgpcore.registration.make_stack`."""
    return make_stack(alignments, tuple(shape), out_path, label=label, **stack_kw)


@task(name="mosaic", cache_policy=NO_CACHE, description="Mosaic the stacks of a cluster/filter")
def mosaic_task(stack_paths: list[str], out_path: str, label: str) -> dict[str, Any]:
    """Run :func:`tgpcore.registration.mosaic.make_mosaic`."""
    return make_mosaic(stack_paths, out_path, label=label)
