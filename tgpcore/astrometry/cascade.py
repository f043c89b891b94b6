"""The plate-solving cascade: header WCS, reference catalogue, local astrometry.net, nova.

Steps are tried in order; the first success wins. Each step runs with a timeout (a step that
overruns is abandoned and the next one tried). Every attempt is recorded.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.table import Table

from tgpcore.astrometry.catalog import at_epoch, brightest_first, magnitude_column
from tgpcore.astrometry.matcher import check_wcs, solve_with_catalogue
from tgpcore.astrometry.solution import Solution, header_wcs

STEPS: tuple[str, ...] = ("header", "catalogue", "solve-field", "nova")


@dataclass
class SolveRequest:
    """What the solvers may use about one image.

    ``xy`` are detected stars (0-based, brightest first); ``hint_ra``/``hint_dec`` the
    approximate centre in J2000 degrees (None if unknown); ``epoch_jyear`` the epoch of the
    observation (for catalogue proper motions); ``image_path`` a FITS file of the image for
    external solvers; ``time_limit_s`` is set by :func:`solve` from the step's timeout so
    that a search stops by itself before it is abandoned.
    """

    xy: np.ndarray
    shape: tuple[int, int]
    header: fits.Header
    scale_arcsec: float
    hint_ra: float | None = None
    hint_dec: float | None = None
    epoch_jyear: float | None = None
    image_path: str | None = None
    reference: Table | None = None
    search_radius_arcmin: float = 30.0
    flux: np.ndarray | None = None
    options: dict = field(default_factory=dict)
    time_limit_s: float | None = None


def _header_step(req: SolveRequest) -> Solution:
    """A valid header WCS; with a reference catalogue it must also match its stars (a
    telescope's approximate WCS, or one of another image, is not a solution)."""
    w = header_wcs(req.header, req.scale_arcsec)
    if w is None:
        return Solution.failed("header", "no valid celestial WCS in the header")
    sip = w.sip.a_order if w.sip is not None else None
    if req.reference is None or len(req.reference) == 0 or len(req.xy) == 0:
        return Solution(ok=True, solver="header", wcs=w, sip_degree=sip,
                        notes=["WCS taken from the header (not checked: no reference)"])
    ra, dec = at_epoch(req.reference, req.epoch_jyear)
    chk = check_wcs(w, req.xy, ra, dec, req.shape, req.scale_arcsec)
    if chk["confirmed"] is False:
        return Solution.failed("header", f"the header WCS does not fit the reference: "
                               f"{chk['n_matched']} of {chk['n_in_field']} catalogue stars "
                               "on the image matched")
    note = ("WCS taken from the header, checked against the reference" if chk["confirmed"]
            else "WCS taken from the header (too few reference stars on the image to check)")
    return Solution(ok=True, solver="header", wcs=w, n_matched=chk["n_matched"],
                    rms_arcsec=chk["rms_arcsec"], sip_degree=sip,
                    residuals=chk["residuals"], notes=[note])


def _catalogue_step(req: SolveRequest) -> Solution:
    if req.reference is None or len(req.reference) == 0:
        return Solution.failed("catalogue", "no reference catalogue")
    if req.hint_ra is None or req.hint_dec is None:
        return Solution.failed("catalogue", "no position hint (RA/DEC)")
    ref = brightest_first(req.reference)
    ra, dec = at_epoch(ref, req.epoch_jyear)
    mcol = magnitude_column(ref)
    opts = dict(req.options.get("catalogue", {}))
    if req.time_limit_s is not None:
        opts.setdefault("time_limit_s", req.time_limit_s)
    return solve_with_catalogue(req.xy, req.shape, ra, dec, req.hint_ra, req.hint_dec,
                                req.scale_arcsec,
                                search_radius_arcmin=req.search_radius_arcmin,
                                flux=req.flux, mag=None if mcol is None else ref[mcol],
                                **opts)


def _solve_field_step(req: SolveRequest) -> Solution:
    from tgpcore.astrometry.solvefield import solve_field

    return solve_field(req, **req.options.get("solve-field", {}))


def _nova_step(req: SolveRequest) -> Solution:
    from tgpcore.astrometry.nova import solve_nova

    return solve_nova(req, **req.options.get("nova", {}))


SOLVERS: dict[str, Callable[[SolveRequest], Solution]] = {
    "header": _header_step, "catalogue": _catalogue_step,
    "solve-field": _solve_field_step, "nova": _nova_step,
}


def solve(req: SolveRequest, steps: tuple[str, ...] = STEPS,
          timeouts: dict[str, float] | None = None) -> tuple[Solution, list[dict]]:
    """Run the cascade on one image.

    Parameters
    ----------
    req : SolveRequest
        The image's stars, header, hints and reference catalogue.
    steps : tuple of str
        Steps to try, in order (subset of :data:`STEPS`).
    timeouts : dict, optional
        Seconds per step (defaults: header 5, catalogue 60, solve-field 120, nova 300).

    Returns
    -------
    Solution, attempts
        The first successful solution (or the last failure) and one record per attempt.
    """
    limits = {"header": 5.0, "catalogue": 60.0, "solve-field": 120.0, "nova": 300.0,
              **(timeouts or {})}
    attempts: list[dict] = []
    last = Solution.failed("none", "no solver tried")
    for name in steps:
        t0 = time.perf_counter()
        req.time_limit_s = 0.8 * limits[name]
        pool = cf.ThreadPoolExecutor(max_workers=1)
        fut = pool.submit(SOLVERS[name], req)
        try:
            sol = fut.result(timeout=limits[name])
        except cf.TimeoutError:
            sol = Solution.failed(name, f"timed out after {limits[name]:g} s")
        except Exception as exc:  # noqa: BLE001 - one broken solver must not stop the cascade
            sol = Solution.failed(name, f"{type(exc).__name__}: {exc}")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        sol.seconds = time.perf_counter() - t0
        attempts.append(sol.summary())
        last = sol
        if sol.ok:
            break
    return last, attempts
