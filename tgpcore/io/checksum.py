"""Content checksums used to key products and detect changed inputs."""

from __future__ import annotations

import hashlib
import os

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def product_key(kind: str, inputs: dict, params: dict, version: str) -> str:
    """Cache key of a product: a digest of its kind, its inputs' checksums (or upstream
    product keys), its parameters and the software version. Same key, same product."""
    import json

    payload = json.dumps({"kind": kind, "inputs": inputs, "params": params,
                          "version": version}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()
