"""Gaia DR3 / DR2 cone queries through astroquery's Gaia TAP+ client, retried and cached.

>>> t = query_gaia_cone(132.85, 11.81, 0.3, cache=DirectoryCache("~/.tgp-cache"))  # doctest: +SKIP

A query is keyed by (release, centre, radius, columns, G limit); with a cache, a repeated
query needs no network. ``cache_mode`` says how the cache is used:

``"prefer"`` (default)
    the cached answer if there is one, else the archive (and the answer is cached);
``"refresh"``
    the archive, and the cached answer only if the archive fails;
``"offline"``
    the cache only (a clear error if the answer is not there);
``"off"``
    the archive only, nothing stored.

The returned table's ``meta["tgp_origin"]`` says where the answer came from (``network``,
``cache`` or ``cache-fallback``).

The client is ``astroquery.utils.tap.core.TapPlus`` set up exactly as ``astroquery.gaia.GaiaClass``
sets it up (server context ``tap-server``, TAP context ``tap``): importing ``astroquery.gaia``
itself contacts the live archive at import time (its module-level ``Gaia = GaiaClass()`` fetches
status messages), which an offline run or a test must not do. Queries run as asynchronous TAP
jobs, because astroquery caps synchronous ones at 2000 rows.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from astropy.table import Table

from tgpcore.catalogs.cache import (
    ECSV,
    ResponseCache,
    request_key,
    table_from_bytes,
    table_to_bytes,
)
from tgpcore.catalogs.columns import GAIA_QUERY_COLUMNS, GAIA_REF_EPOCH, standardise_gaia_table
from tgpcore.catalogs.credentials import GaiaCredentials
from tgpcore.catalogs.retry import PermanentError, RetriesExhaustedError, RetryPolicy, retry

log = logging.getLogger(__name__)

GAIA_ARCHIVE_URL = "https://gea.esac.esa.int/"
RELEASE_TABLES = {"dr3": "gaiadr3.gaia_source", "dr2": "gaiadr2.gaia_source"}
CacheMode = Literal["prefer", "refresh", "offline", "off"]


class CatalogUnavailableError(RuntimeError):
    """A catalogue answer could be had neither from the service nor from the cache."""


@dataclass(frozen=True)
class GaiaConeRequest:
    """One cone query (what the cache key is made of). Angles in degrees."""

    release: str
    ra_deg: float
    dec_deg: float
    radius_deg: float
    columns: tuple[str, ...]
    g_max: float | None = None

    def as_dict(self) -> dict:
        """Plain, canonical data (rounded so that float noise does not split the cache)."""
        return {"release": self.release, "ra_deg": round(self.ra_deg, 7),
                "dec_deg": round(self.dec_deg, 7), "radius_deg": round(self.radius_deg, 7),
                "columns": list(self.columns),
                "g_max": None if self.g_max is None else round(self.g_max, 3)}

    def key(self) -> str:
        """Cache key."""
        return request_key("gaia", self.as_dict())


def gaia_cone_adql(req: GaiaConeRequest) -> str:
    """The ADQL of a cone query (DR2: RUWE joined from ``gaiadr2.ruwe``).

    Raises
    ------
    ValueError
        For an unknown release.
    """
    if req.release not in RELEASE_TABLES:
        raise ValueError(f"unknown Gaia release {req.release!r}; known: "
                         f"{', '.join(RELEASE_TABLES)}")
    cols = list(req.columns)
    if req.release == "dr2":
        select = ", ".join("r.ruwe" if c == "ruwe" else f"g.{c}" for c in cols)
        source = "gaiadr2.gaia_source AS g LEFT OUTER JOIN gaiadr2.ruwe AS r " \
                 "ON g.source_id = r.source_id"
        pre = "g."
    else:
        select, source, pre = ", ".join(cols), RELEASE_TABLES[req.release], ""
    where = (f"1 = CONTAINS(POINT('ICRS', {pre}ra, {pre}dec), "
             f"CIRCLE('ICRS', {req.ra_deg:.8f}, {req.dec_deg:.8f}, {req.radius_deg:.8f}))")
    if req.g_max is not None:
        where += f" AND {pre}phot_g_mean_mag <= {req.g_max:.3f}"
    return f"SELECT {select} FROM {source} WHERE {where}"


class _TimeoutConnections:
    """astroquery's HTTP connection factory, with a socket timeout."""

    def __init__(self, host: str, port: int, sslport: int, timeout: float) -> None:
        self.host, self.port, self.sslport, self.timeout = host, port, sslport, timeout

    def get_connection(self, *, ishttps: bool = False, cookie=None, verbose: bool = False):
        if ishttps or cookie is not None:
            return self.get_connection_secure(verbose)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def get_connection_secure(self, verbose: bool = False):
        return http.client.HTTPSConnection(self.host, self.sslport, timeout=self.timeout)


class GaiaArchive:
    """The Gaia TAP service through ``astroquery.gaia.GaiaClass``.

    Parameters
    ----------
    url : str
        Archive root (``https://gea.esac.esa.int/``; tests use a local server).
    credentials : GaiaCredentials, optional
        Login (anonymous access by default). The password is never logged.
    socket_timeout_s : float
        Timeout of each HTTP connection.
    """

    def __init__(self, url: str = GAIA_ARCHIVE_URL, credentials: GaiaCredentials | None = None,
                 socket_timeout_s: float = 120.0) -> None:
        self.url = url
        self._credentials = credentials
        self.socket_timeout_s = socket_timeout_s
        self._client = None

    def __repr__(self) -> str:
        user = self._credentials.user if self._credentials else None
        return f"GaiaArchive(url={self.url!r}, user={user!r})"

    def _connect(self):
        from astroquery.utils.tap.core import TapPlus

        client = TapPlus(url=self.url, server_context="tap-server", tap_context="tap",
                         upload_context="Upload", table_edit_context="TableTool",
                         data_context="data", datalink_context="datalink", verbose=False)
        parsed = urlparse(self.url)
        default = 443 if parsed.scheme == "https" else 80
        handler = _TimeoutConnections(parsed.hostname or "", parsed.port or default,
                                      parsed.port or 443, self.socket_timeout_s)
        # astroquery has no timeout option and its connection factory is private; if its
        # internals change, the per-attempt timeout of the retry loop still applies.
        with contextlib.suppress(AttributeError):
            client._TapPlus__connHandler._TapConn__connectionHandler = handler
        if self._credentials is not None:
            creds = self._credentials
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    client.login(user=creds.user, password=creds.password)
            except Exception as exc:  # noqa: BLE001 - re-raised without the password
                raise PermanentError(f"Gaia login as {creds.user!r} failed: "
                                     f"{creds.redact(f'{type(exc).__name__}: {exc}')}") from None
        return client

    def run(self, adql: str) -> Table:
        """Run an ADQL query as an asynchronous TAP job and return its table.

        Raises
        ------
        PermanentError
            If the archive reports the job as failed (e.g. an ADQL error).
        """
        if self._client is None:
            self._client = self._connect()
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # astroquery prints; we log
                job = self._client.launch_job_async(adql, output_format="votable_plain")
                return job.get_results()
        except SystemError as exc:  # astroquery's way of saying "job phase ERROR"
            raise PermanentError(f"Gaia archive job failed: {exc}") from exc


def cached_fetch(key: str, fetch: Callable[[], Table], finish: Callable[[Table, str], Table],
                 store: Callable[[Table], Table], *, cache: ResponseCache | None,
                 cache_mode: CacheMode, policy: RetryPolicy | None,
                 sleep: Callable[[float], None] | None, what: str,
                 service: str = "service", logger: logging.Logger = log) -> Table:
    """A catalogue answer from the cache or the service, as ``cache_mode`` says.

    The cached answer (when ``cache_mode`` is ``"prefer"`` or ``"offline"`` and there is one)
    goes through ``finish(table, "cache")``; otherwise ``fetch`` is retried under ``policy``
    and its table goes through ``store`` (which finishes it and caches it as the service
    wants); if the service fails, a cached answer goes through ``finish(table,
    "cache-fallback")``. ``what`` names the query in logs and errors, ``service`` the service;
    ``logger`` is the caller's module logger.

    Raises
    ------
    CatalogUnavailableError
        If the service failed (after its retries) and the cache had no answer, or if
        ``cache_mode="offline"`` and the answer is not cached.
    """
    use_cache = cache is not None and cache_mode != "off"
    if use_cache and cache_mode in ("prefer", "offline"):
        hit = cache.cache_get(key)
        if hit is not None:
            logger.info("%s: answered from the cache (%s)", what, key[:12])
            return finish(table_from_bytes(hit), "cache")
        if cache_mode == "offline":
            raise CatalogUnavailableError(f"{what}: offline mode and no cached answer "
                                          f"(key {key[:12]})")
    kw = {"sleep": sleep} if sleep is not None else {}
    try:
        table = retry(fetch, policy or RetryPolicy(), what=what, **kw)
    except (RetriesExhaustedError, PermanentError) as exc:
        hit = cache.cache_get(key) if use_cache else None
        if hit is not None:
            logger.warning("%s: %s failed (%s); using the cached answer", what, service, exc)
            return finish(table_from_bytes(hit), "cache-fallback")
        raise CatalogUnavailableError(f"{exc}; no cached answer to fall back on") from exc
    return store(table)


def query_gaia_cone(ra_deg: float, dec_deg: float, radius_deg: float, *, release: str = "dr3",
                    columns: tuple[str, ...] | None = None, g_max: float | None = None,
                    cache: ResponseCache | None = None, cache_mode: CacheMode = "prefer",
                    policy: RetryPolicy | None = None, archive: GaiaArchive | None = None,
                    sleep: Callable[[float], None] | None = None) -> Table:
    """Gaia sources within ``radius_deg`` of (ra, dec), from the cache or the archive.

    Parameters
    ----------
    ra_deg, dec_deg, radius_deg : float
        Cone (ICRS, degrees).
    release : {"dr3", "dr2"}
        Data release.
    columns : tuple of str, optional
        Archive columns (default :data:`tgpcore.catalogs.columns.GAIA_QUERY_COLUMNS`).
    g_max : float, optional
        Faintest G returned.
    cache : ResponseCache, optional
        A :class:`tgpcore.catalogs.cache.DirectoryCache`, a ``RunDB``, or None.
    cache_mode : {"prefer", "refresh", "offline", "off"}
        See the module docstring.
    policy : RetryPolicy, optional
        Retries, backoff and per-attempt timeout.
    archive : GaiaArchive, optional
        The service (default: the ESA archive, anonymous).
    sleep : callable, optional
        Replaces ``time.sleep`` between attempts (tests).

    Returns
    -------
    astropy.table.Table
        Archive column names with units; ``meta``: ``tgp_origin``, ``tgp_cache_key``,
        ``gaia_release``, ``ref_epoch_yr``.

    Raises
    ------
    CatalogUnavailableError
        If the archive failed (after its retries) and the cache had no answer, or if
        ``cache_mode="offline"`` and the answer is not cached.
    """
    release = release.lower()
    req = GaiaConeRequest(release, float(ra_deg), float(dec_deg), float(radius_deg),
                          tuple(columns or GAIA_QUERY_COLUMNS[release]), g_max)
    adql = gaia_cone_adql(req)
    key = req.key()
    what = (f"Gaia {release.upper()} cone ({req.ra_deg:.5f}, {req.dec_deg:+.5f}, "
            f"r={req.radius_deg:.4f} deg)")

    def finish(t: Table, origin: str) -> Table:
        t = standardise_gaia_table(t, source=what)
        t.meta.update({"tgp_origin": origin, "tgp_cache_key": key, "gaia_release": release,
                       "ref_epoch_yr": GAIA_REF_EPOCH[release]})
        return t

    def store(table: Table) -> Table:
        out = finish(table, "network")
        if cache is not None and cache_mode != "off":
            cache.cache_put(key, "gaia", {**req.as_dict(), "adql": adql}, table_to_bytes(out),
                            content_type=ECSV)
        log.info("%s: %d sources from the archive", what, len(out))
        return out

    archive = archive or GaiaArchive()
    return cached_fetch(key, lambda: archive.run(adql), finish, store, cache=cache,
                        cache_mode=cache_mode, policy=policy, sleep=sleep, what=what,
                        service="archive")
