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


def product_key(kind: str, inputs: dict, params: dict, version: str,
                stage: str | None = None) -> str:
    """Cache key of a product: a digest of its kind, its inputs' checksums (or upstream
    product keys), its parameters, the package version and the version of the code that
    makes it. Same key, same product.

    Parameters
    ----------
    kind : str
        Product kind, e.g. ``'master_flat'``, ``'mosaic'``.
    inputs, params : dict
        JSON-able; what the product is made from and how.
    version : str
        The package's release (``tgpcore.__version__``).
    stage : str, optional
        The stage whose code makes it, for :func:`tgpcore.provenance.code_version`; by
        default the stage of ``kind`` (:data:`tgpcore.provenance.KIND_STAGES`).

    Returns
    -------
    str
        64 hex digits. It changes when the code of the product's stage changes, and not
        when unrelated code (the report's, say) does.
    """
    import json

    from tgpcore.provenance import code_version

    payload = json.dumps({"kind": kind, "inputs": inputs, "params": params,
                          "version": version, "code": code_version(stage or kind)},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()
