"""The run database's cache of network answers (Gaia, VizieR, nova.astrometry.net)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete

from tgpcore.rundb.coltypes import utcnow
from tgpcore.rundb.models import CacheEntry
from tgpcore.rundb.store import Store, upsert


class HttpCache(Store):
    """Responses of network services by request digest, with an optional lifetime.

    It has the ``cache_get``/``cache_put`` names of :mod:`tgpcore.catalogs.cache`, so it can
    serve as that module's cache.
    """

    def cache_get(self, key: str) -> bytes | None:
        """Return a cached response, or ``None`` if absent or expired."""
        with self._session() as s:
            entry = s.get(CacheEntry, key)
            if entry is None:
                return None
            if entry.expires_at is not None and entry.expires_at <= utcnow():
                return None
            return entry.response

    def cache_put(self, key: str, service: str, request: Mapping[str, Any] | None,
                  response: bytes, content_type: str | None = None,
                  ttl_s: float | None = None) -> None:
        """Store (or replace) a cached response.

        Parameters
        ----------
        key : str
            SHA-256 hex of the request.
        service : str
            E.g. ``'gaia'``, ``'vizier'``, ``'nova'``.
        request : mapping or None
            The request, for humans (JSON; no secrets).
        response : bytes
        content_type : str, optional
        ttl_s : float, optional
            Lifetime in seconds; never expires by default.
        """
        now = utcnow()
        row = {"key": key, "service": service,
               "request": dict(request) if request is not None else None,
               "response": bytes(response), "content_type": content_type, "created_at": now,
               "expires_at": now + dt.timedelta(seconds=ttl_s) if ttl_s is not None else None}
        with self._session() as s:
            upsert(s, CacheEntry, [row], ("key",))

    def cache_purge(self) -> int:
        """Delete expired cache entries; return how many."""
        with self._session() as s:
            return s.execute(delete(CacheEntry).where(
                CacheEntry.expires_at.is_not(None), CacheEntry.expires_at <= utcnow())).rowcount
