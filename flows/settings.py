"""Settings read from the environment by the orchestration layer.

The library's own (``TGP_DATABASE_URL``, ``TGP_OUT_ROOT``) are in ``tgpcore.settings``. The names
here and there are the ones docker-compose.yml sets.
"""

from __future__ import annotations

import os

from tgpcore.settings import ENV_OUT_ROOT, default_out_root

ENV_DASK_ADDRESS = "TGP_DASK_ADDRESS"

__all__ = ["ENV_DASK_ADDRESS", "ENV_OUT_ROOT", "default_dask_address", "default_out_root"]


def default_dask_address() -> str | None:
    """An existing Dask scheduler to use (``TGP_DASK_ADDRESS``), or None for a local cluster."""
    return os.environ.get(ENV_DASK_ADDRESS, "").strip() or None
