"""nova.astrometry.net through :mod:`astroquery.astrometry_net`, from the detected stars.

The API key comes from ``TGP_ASTROMETRY_API_KEY`` (or the ``api_key`` argument, e.g. from a
Prefect Secret block); it is only handed to astroquery for the login request and never appears
in a message, log line or product: any text that might carry it is scrubbed. The service URL
can be pointed elsewhere (``TGP_ASTROMETRY_URL``, or ``server``) — tests use a fake server on
127.0.0.1. Calls are retried with exponential backoff and jitter, and bounded in time.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from tgpcore.astrometry.solution import Solution
from tgpcore.catalogs.retry import RetriesExhaustedError, call_with_retries, is_transient

KEY_ENV = "TGP_ASTROMETRY_API_KEY"
URL_ENV = "TGP_ASTROMETRY_URL"


def _scrub(text: str, key: str | None) -> str:
    return text.replace(key, "***") if key else text


def _transient(exc: BaseException) -> bool:
    # astroquery reports HTTP trouble as RuntimeError ('Post of job failed') or as a JSON
    # decoding error of an error page; a missing key is caught before any call.
    return is_transient(exc) or isinstance(exc, RuntimeError | ValueError)


def solve_nova(req, *, api_key: str | None = None, server: str | None = None,
               solve_timeout_s: float = 240.0, attempts: int = 3, base_delay_s: float = 2.0,
               n_stars: int = 100) -> Solution:
    """Solve the request's star list on nova.astrometry.net (or a compatible server).

    Parameters
    ----------
    req : SolveRequest
        Stars (brightest first), image shape, pixel scale, optional position hint.
    api_key : str, optional
        Default: ``$TGP_ASTROMETRY_API_KEY``.
    server : str, optional
        Base URL (default ``$TGP_ASTROMETRY_URL`` or astroquery's ``https://nova.astrometry.net``).
    solve_timeout_s : float
        How long one submission may take.
    attempts, base_delay_s :
        Retries with backoff and jitter on network/server errors.
    n_stars : int
        Brightest stars sent.

    Returns
    -------
    Solution
        Failed with a reason (never containing the key) when there is no key, the service
        cannot be reached, or it finds no solution.
    """
    key = api_key or os.environ.get(KEY_ENV)
    if not key:
        return Solution.failed("nova", f"no API key (set {KEY_ENV})")
    if len(req.xy) < 5:
        return Solution.failed("nova", f"only {len(req.xy)} stars")
    from astroquery.astrometry_net import AstrometryNet, conf

    base = (server or os.environ.get(URL_ENV) or conf.server).rstrip("/")
    from urllib.parse import urlparse

    from tgpcore.settings import ENV_OFFLINE, offline

    host = urlparse(base if "://" in base else "http://" + base).hostname or ""
    if offline() and host not in ("127.0.0.1", "localhost", "::1"):
        return Solution.failed("nova", f"{ENV_OFFLINE} is set: {host} not contacted")
    ny, nx = req.shape
    settings = {"scale_units": "arcsecperpix", "scale_type": "ul",
                "scale_lower": req.scale_arcsec * 0.95, "scale_upper": req.scale_arcsec * 1.05,
                "publicly_visible": "n"}
    if req.hint_ra is not None and req.hint_dec is not None:
        settings.update({"center_ra": float(req.hint_ra) % 360.0,
                         "center_dec": float(req.hint_dec),
                         "radius": max(req.search_radius_arcmin / 60.0, 0.5)})
    xy = np.asarray(req.xy, float)[:n_stars] + 1.0  # FITS pixel convention

    def attempt() -> fits.Header | dict:
        client = AstrometryNet()
        client.URL = base
        client.API_URL = f"{base}/api"
        client.TIMEOUT = solve_timeout_s
        with conf.set_temp("api_key", key), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return client.solve_from_source_list(xy[:, 0], xy[:, 1], nx, ny,
                                                 solve_timeout=solve_timeout_s, verbose=False,
                                                 **settings)

    t0 = time.perf_counter()
    try:
        header = call_with_retries(attempt, attempts=attempts, base_delay=base_delay_s,
                                   max_delay=30.0, jitter=0.5, timeout=solve_timeout_s + 60.0,
                                   what="nova.astrometry.net solve", retry_if=_transient)
    except RetriesExhaustedError as exc:
        return Solution.failed("nova", _scrub(f"service unavailable after {attempts} attempts: "
                                              f"{type(exc.__cause__ or exc).__name__}", key))
    except Exception as exc:  # noqa: BLE001 - report, scrubbed, and let the cascade go on
        return Solution.failed("nova", _scrub(f"{type(exc).__name__}: {exc}", key))
    if not header:
        return Solution.failed("nova", "no solution found by astrometry.net")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wcs = WCS(header)
    return Solution(ok=True, solver="nova", wcs=wcs, seconds=time.perf_counter() - t0,
                    notes=["nova.astrometry.net"])
