"""Task wrappers of the plate-solving stage: one solve per stack, WCS carried to its frames."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tgpcore.astrometry import frame_wcs, solve_image


@task(name="solve-stack", cache_policy=NO_CACHE, description="Plate-solve one stack (cascade)")
def solve_task(path: str, scale_arcsec: float, hint_ra: float | None, hint_dec: float | None,
               reference: str | list[str] | None, steps: list[str], timeouts: dict[str, float],
               search_radius_arcmin: float, rotation_deg: float | None = None,
               parity: int | None = None, fwhm_px: float | None = None,
               plot_path: str | None = None) -> dict[str, Any]:
    """Run :func:`tgpcore.astrometry.solve_image` (writes the WCS into the stack and, with a
    reference, the residual figure to ``plot_path``)."""
    return solve_image(path, scale_arcsec, hint_ra, hint_dec, reference, steps=tuple(steps),
                       timeouts=timeouts, search_radius_arcmin=search_radius_arcmin,
                       rotation_deg=rotation_deg, parity=parity, fwhm_px=fwhm_px,
                       plot_path=plot_path)


@task(name="frame-wcs", cache_policy=NO_CACHE, description="Carry a stack's WCS to its frames")
def frame_wcs_task(solution: dict[str, Any], alignments: list[dict[str, Any]],
                   shape: list[int], out_paths: list[str]) -> list[str]:
    """Write one ``.wcs`` header per frame (see :func:`tgpcore.astrometry.frame_wcs`)."""
    for a, out in zip(alignments, out_paths, strict=True):
        frame_wcs(solution, a, tuple(shape), out)
    return out_paths
