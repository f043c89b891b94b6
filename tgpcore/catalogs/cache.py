"""Caches of network answers: the run database's cache table, or a folder on disk.

Both satisfy :class:`ResponseCache` (``cache_get``/``cache_put``, the run database's own method
names, so a :class:`tgpcore.rundb.repository.RunDB` is a cache as it is). Keys are SHA-256 hex
digests of the canonical JSON of the request (:func:`request_key`); requests stored beside the
answers carry no secrets.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from astropy.table import Table

from tgpcore.io.atomic import atomic_write_bytes

ECSV = "text/x-ecsv"


@runtime_checkable
class ResponseCache(Protocol):
    """Anything that can store and return cached answers by key."""

    def cache_get(self, key: str) -> bytes | None:
        """The cached answer, or ``None``."""

    def cache_put(self, key: str, service: str, request: Mapping[str, Any] | None,
                  response: bytes, content_type: str | None = None,
                  ttl_s: float | None = None) -> None:
        """Store an answer."""


def request_key(service: str, request: Mapping[str, Any]) -> str:
    """SHA-256 hex of a request (service name + canonical JSON, floats as given)."""
    blob = json.dumps({"service": service, "request": request}, sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def table_to_bytes(table: Table) -> bytes:
    """Serialise a table as ECSV (keeps dtypes, units, masks and meta)."""
    buf = io.StringIO()
    t = table.copy(copy_data=False)
    t.meta = {k: v for k, v in t.meta.items() if isinstance(v, str | int | float | bool)}
    t.write(buf, format="ascii.ecsv")
    return buf.getvalue().encode()


def table_from_bytes(data: bytes) -> Table:
    """Inverse of :func:`table_to_bytes`."""
    return Table.read(data.decode(), format="ascii.ecsv")


class DirectoryCache:
    """A cache folder: ``<key>.bin`` holds the answer, ``<key>.json`` the request and expiry.

    Parameters
    ----------
    root : str or Path
        The folder (created on first write).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"DirectoryCache({str(self.root)!r})"

    def cache_get(self, key: str) -> bytes | None:
        """The cached answer, or ``None`` if absent or expired."""
        data, meta = self.root / f"{key}.bin", self.root / f"{key}.json"
        if not data.exists():
            return None
        if meta.exists():
            expires = json.loads(meta.read_text()).get("expires_at")
            if expires and dt.datetime.fromisoformat(expires) <= dt.datetime.now(dt.UTC):
                return None
        return data.read_bytes()

    def cache_put(self, key: str, service: str, request: Mapping[str, Any] | None,
                  response: bytes, content_type: str | None = None,
                  ttl_s: float | None = None) -> None:
        """Store (or replace) an answer, atomically."""
        now = dt.datetime.now(dt.UTC)
        meta = {"service": service, "request": dict(request) if request else None,
                "content_type": content_type, "created_at": now.isoformat(),
                "expires_at": (now + dt.timedelta(seconds=ttl_s)).isoformat()
                if ttl_s is not None else None}
        atomic_write_bytes(self.root / f"{key}.bin", bytes(response))
        atomic_write_bytes(self.root / f"{key}.json",
                           json.dumps(meta, indent=1, default=str).encode())
