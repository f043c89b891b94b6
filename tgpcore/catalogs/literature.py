"""Published parameters of open clusters, for the report's comparison: VizieR, cached.

- Cantat-Gaudin et al. (2020, A&A 640, A1; VizieR ``J/A+A/640/A1/table1``): log age
  (``AgeNN``), distance modulus (``DMNN``) and A_V (``AVNN``) from a neural network on Gaia
  DR2; E(B-V) = A_V / 3.1. No metallicity.

Answers go through :func:`tgpcore.catalogs.vizier.query_vizier`: retried, cached in the run
database, read from the cache when offline. A cluster the catalogue does not list gives no row;
a service that cannot be reached gives a row with a note instead of values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tgpcore.catalogs.gaia import CatalogUnavailableError
from tgpcore.catalogs.retry import RetryPolicy
from tgpcore.catalogs.vizier import cantat_gaudin_2020_cluster

#: One quick try: the report must not wait minutes for a service that is down.
REPORT_POLICY = RetryPolicy(attempts=1, base_delay=0.1, max_delay=0.1, jitter=0.0,
                            timeout=15.0)


def _value(row, name: str) -> float | None:
    try:
        v = float(np.ma.filled(np.ma.asarray(row[name], float), np.nan))
    except (KeyError, TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def cantat_gaudin_2020(cluster: str, **query_kw: Any) -> dict[str, Any] | None:
    """Cantat-Gaudin et al. (2020) parameters of a cluster, or None if it is not listed.

    Returns
    -------
    dict or None
        ``source``, ``log_age``, ``dm``, ``ebv`` (A_V / 3.1), ``mh`` (None), ``reference``.
    """
    t = cantat_gaudin_2020_cluster(cluster, **query_kw)
    if len(t) == 0:
        return None
    r = t[0]
    av = _value(r, "AVNN")
    return {"source": "Cantat-Gaudin+2020", "log_age": _value(r, "AgeNN"),
            "dm": _value(r, "DMNN"), "ebv": None if av is None else av / 3.1, "mh": None,
            "reference": "Cantat-Gaudin et al. 2020, A&A 640, A1 (VizieR J/A+A/640/A1)"}


def literature_parameters(cluster: str, cache=None, offline: bool = False,
                          policy: RetryPolicy | None = None, service=None
                          ) -> list[dict[str, Any]]:
    """The published parameters of a cluster that can be had now (one row per catalogue).

    Parameters
    ----------
    cluster : str
        The cluster's name as the night's frames give it (``NGC2420``, ``NGC 2682``, ...).
    cache : ResponseCache, optional
        Where VizieR answers are kept (the run database).
    offline : bool
        Read the cache only.
    policy : RetryPolicy, optional
        Retries (one quick try by default).
    service : VizierService, optional
        Another VizieR (tests).
    """
    name = cluster.replace("_", " ").strip()
    for prefix in ("NGC", "IC"):
        if name.upper().startswith(prefix) and name[len(prefix):len(prefix) + 1].isdigit():
            name = f"{prefix} {name[len(prefix):]}"
    kw: dict[str, Any] = {"cache": cache, "cache_mode": "offline" if offline else "prefer",
                          "policy": policy or REPORT_POLICY}
    if service is not None:
        kw["service"] = service
    try:
        row = cantat_gaudin_2020(name, **kw)
    except CatalogUnavailableError as exc:
        return [{"source": "Cantat-Gaudin+2020", "log_age": None, "dm": None, "ebv": None,
                 "mh": None, "note": f"not available ({exc})"}]
    return [row] if row else []
