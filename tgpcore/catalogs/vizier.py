"""VizieR catalogues through ``astroquery.vizier``, retried and cached like Gaia.

Two catalogues the pipeline uses have their own helpers:

- Landolt (2009) UBVRI standards, VizieR ``II/183A`` (:func:`landolt_standards`);
- Cantat-Gaudin et al. (2020) cluster parameters, VizieR ``J/A+A/640/A1``
  (:func:`cantat_gaudin_2020_cluster`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from tgpcore.catalogs.cache import ECSV, ResponseCache, request_key, table_to_bytes
from tgpcore.catalogs.gaia import CacheMode, cached_fetch
from tgpcore.catalogs.retry import RetryPolicy

log = logging.getLogger(__name__)

LANDOLT_CATALOG = "II/183A/table2"
CANTAT_GAUDIN_2020_CATALOG = "J/A+A/640/A1/table1"


@dataclass(frozen=True)
class VizierService:
    """Where VizieR is: host (a mirror name as astroquery expects it) and scheme.

    ``scheme="http"`` exists for tests against a local server.
    """

    server: str = "vizier.cds.unistra.fr"
    scheme: str = "https"
    timeout_s: float = 120.0

    def client(self, columns: tuple[str, ...], row_limit: int):
        """An ``astroquery.vizier.VizierClass`` for this service."""
        from astroquery.vizier import VizierClass

        scheme = self.scheme

        class _Vizier(VizierClass):
            def _server_to_url(self, return_type: str = "votable") -> str:
                return f"{scheme}://{self.VIZIER_SERVER}/viz-bin/{return_type}"

        return _Vizier(columns=list(columns), row_limit=row_limit, timeout=self.timeout_s,
                       vizier_server=self.server)


def _pick(tables, catalog: str) -> Table:
    if len(tables) == 0:
        return Table()
    keys = list(tables.keys())
    for k in keys:
        if k == catalog:
            return tables[k]
    for k in keys:
        if k.startswith(catalog):
            return tables[k]
    return tables[keys[0]]


def query_vizier(catalog: str, *, ra_deg: float | None = None, dec_deg: float | None = None,
                 radius_deg: float | None = None, constraints: Mapping[str, str] | None = None,
                 columns: tuple[str, ...] = ("**",), row_limit: int = -1,
                 cache: ResponseCache | None = None, cache_mode: CacheMode = "prefer",
                 policy: RetryPolicy | None = None, service: VizierService | None = None,
                 sleep: Callable[[float], None] | None = None) -> Table:
    """One VizieR table, by cone or by column constraints, from the cache or the service.

    Parameters
    ----------
    catalog : str
        VizieR table, e.g. ``"II/183A/table2"``.
    ra_deg, dec_deg, radius_deg : float, optional
        Cone (ICRS, degrees); without it, ``constraints`` select the rows.
    constraints : mapping, optional
        VizieR column constraints, e.g. ``{"Cluster": "NGC_2682"}``.
    columns : tuple of str
        Columns (``"**"``: all, with VizieR's computed ones).
    row_limit : int
        Maximum rows (-1: no limit).
    cache, cache_mode, policy, sleep
        As in :func:`tgpcore.catalogs.gaia.query_gaia_cone`.
    service : VizierService, optional
        The VizieR mirror.

    Returns
    -------
    astropy.table.Table
        The table (possibly empty); ``meta["tgp_origin"]`` says where it came from.

    Raises
    ------
    ValueError
        Without a cone or constraints.
    CatalogUnavailableError
        If neither the service nor the cache can answer.
    """
    cone = None not in (ra_deg, dec_deg, radius_deg)
    if not cone and not constraints:
        raise ValueError("query_vizier needs a cone (ra, dec, radius) or constraints")
    service = service or VizierService()
    request = {"catalog": catalog, "columns": list(columns), "row_limit": row_limit,
               "constraints": dict(constraints or {}),
               "cone": [round(float(ra_deg), 7), round(float(dec_deg), 7),
                        round(float(radius_deg), 7)] if cone else None}
    key = request_key("vizier", request)
    what = f"VizieR {catalog}" + (f" cone ({ra_deg:.5f}, {dec_deg:+.5f}, r={radius_deg:.4f} deg)"
                                  if cone else f" {dict(constraints or {})}")

    def finish(t: Table, origin: str) -> Table:
        t.meta.update({"tgp_origin": origin, "tgp_cache_key": key, "vizier_catalog": catalog})
        return t

    def run() -> Table:
        client = service.client(columns, row_limit)
        if cone:
            res = client.query_region(SkyCoord(ra_deg * u.deg, dec_deg * u.deg),
                                      radius=radius_deg * u.deg, catalog=catalog, cache=False,
                                      column_filters=dict(constraints or {}))
        else:
            res = client.query_constraints(catalog=catalog, cache=False, **dict(constraints))
        return _pick(res, catalog)

    def store(table: Table) -> Table:
        table = Table(table, masked=table.masked)
        if cache is not None and cache_mode != "off":
            cache.cache_put(key, "vizier", request, table_to_bytes(table), content_type=ECSV)
        return finish(table, "network")

    return cached_fetch(key, run, finish, store, cache=cache, cache_mode=cache_mode,
                        policy=policy, sleep=sleep, what=what, logger=log)


def landolt_standards(ra_deg: float, dec_deg: float, radius_deg: float, **kw) -> Table:
    """Landolt (2009) UBVRI standards (VizieR II/183A) within a cone; see :func:`query_vizier`."""
    return query_vizier(LANDOLT_CATALOG, ra_deg=ra_deg, dec_deg=dec_deg, radius_deg=radius_deg,
                        **kw)


def cantat_gaudin_name(name: str) -> str:
    """A cluster name as Cantat-Gaudin et al. (2020) spell it: ``"NGC 2682"`` -> ``"NGC_2682"``."""
    return "_".join(name.strip().split())


def cantat_gaudin_2020_cluster(name: str, **kw) -> Table:
    """One cluster's row of Cantat-Gaudin et al. (2020), VizieR J/A+A/640/A1 (empty if absent).

    Parameters
    ----------
    name : str
        E.g. ``"NGC 2682"`` or ``"NGC_2682"`` (Messier names are not translated).
    **kw
        Passed to :func:`query_vizier` (cache, policy, service ...).
    """
    return query_vizier(CANTAT_GAUDIN_2020_CATALOG,
                        constraints={"Cluster": f"={cantat_gaudin_name(name)}"}, **kw)
