"""Task wrappers of the plate-solving stage: one solve per stack, WCS carried to its frames."""

from __future__ import annotations

from typing import Any

from astropy.io import fits
from prefect import task
from prefect.cache_policies import NO_CACHE

from tgpcore.astrometry import frame_wcs, solve_image
from tgpcore.astrometry.products import write_wcs
from tgpcore.io.checksum import sha256_file


@task(name="solve-stack", cache_policy=NO_CACHE, description="Plate-solve one stack (cascade)")
def solve_task(path: str, scale_arcsec: float, hint_ra: float | None, hint_dec: float | None,
               reference: str | list[str] | None, steps: list[str], timeouts: dict[str, float],
               search_radius_arcmin: float, rotation_deg: float | None = None,
               parity: int | None = None, fwhm_px: float | None = None,
               plot_path: str | None = None, write: bool = True) -> dict[str, Any]:
    """Run :func:`tgpcore.astrometry.solve_image` (with ``write``, writes the WCS into the
    image; with a reference, the residual figure to ``plot_path``)."""
    return solve_image(path, scale_arcsec, hint_ra, hint_dec, reference, steps=tuple(steps),
                       timeouts=timeouts, search_radius_arcmin=search_radius_arcmin,
                       rotation_deg=rotation_deg, parity=parity, fwhm_px=fwhm_px,
                       plot_path=plot_path, write=write)


@task(name="solved-stack", cache_policy=NO_CACHE, description="A stack with its WCS, as a new file")
def solved_stack_task(stack: str, dest: str, wcs_header: str | None, history: str
                      ) -> dict[str, Any]:
    """Write the solved stack ``dest``: the stack with the WCS (``wcs_header`` None: the
    stack's own); the stack itself is never modified."""
    hdr = fits.Header.fromstring(wcs_header, sep="\n") if wcs_header else None
    write_wcs(stack, hdr, history, dest=dest)
    return {"path": dest, "checksum": sha256_file(dest)}


@task(name="frame-wcs", cache_policy=NO_CACHE, description="Carry a stack's WCS to its frames")
def frame_wcs_task(solution: dict[str, Any], alignments: list[dict[str, Any]],
                   shape: list[int], out_paths: list[str]) -> list[str]:
    """Write one ``.wcs`` header per frame (see :func:`tgpcore.astrometry.frame_wcs`)."""
    for a, out in zip(alignments, out_paths, strict=True):
        frame_wcs(solution, a, tuple(shape), out)
    return out_paths
