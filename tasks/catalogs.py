"""Task wrappers of catalogue access: Gaia cone to a file, with credentials from env or Secret.

The library retries on its own (:mod:`tgpcore.catalogs.retry`); these tasks add names,
logging, and the one thing the library must not know about: Prefect Secret blocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tgpcore.catalogs.cache import DirectoryCache, ResponseCache
from tgpcore.catalogs.credentials import (
    GaiaCredentials,
    gaia_credentials_from_env,
)
from tgpcore.catalogs.files import read_catalog_file
from tgpcore.catalogs.gaia import GAIA_ARCHIVE_URL, GaiaArchive, query_gaia_cone
from tgpcore.catalogs.retry import RetryPolicy
from tgpcore.io.atomic import atomic_path
from tgpcore.io.tables import write_ecsv

#: Prefect Secret blocks read when the environment holds no Gaia credentials.
SECRET_USER_BLOCK = "tgp-gaia-user"
SECRET_PASSWORD_BLOCK = "tgp-gaia-password"


def resolve_gaia_credentials() -> GaiaCredentials | None:
    """Gaia credentials: ``TGP_GAIA_USER``/``TGP_GAIA_PASSWORD``, else the Prefect Secret blocks
    ``tgp-gaia-user``/``tgp-gaia-password``, else ``None`` (anonymous). Never logged."""
    creds = gaia_credentials_from_env()
    if creds is not None:
        return creds
    try:
        from prefect.blocks.system import Secret

        user = Secret.load(SECRET_USER_BLOCK).get()
        password = Secret.load(SECRET_PASSWORD_BLOCK).get()
    except Exception:  # noqa: BLE001 - no blocks (or no server): anonymous access
        return None
    return GaiaCredentials(str(user), str(password)) if user and password else None


@task(name="gaia-cone", cache_policy=NO_CACHE,
      description="Gaia cone query (cached) written to an ECSV file")
def gaia_cone_task(ra_deg: float, dec_deg: float, radius_deg: float, out_path: str, *,
                   release: str = "dr3", g_max: float | None = None,
                   cache_dir: str | None = None, cache: ResponseCache | None = None,
                   cache_mode: str = "prefer", archive_url: str = GAIA_ARCHIVE_URL,
                   attempts: int = 4, timeout_s: float = 300.0) -> dict[str, Any]:
    """Query a Gaia cone (or take it from the cache) and write it to ``out_path``.

    Returns
    -------
    dict
        ``path``, ``n_rows``, ``origin`` (network / cache / cache-fallback), ``cache_key``.
    """
    logger = get_run_logger()
    if cache is None and cache_dir:
        cache = DirectoryCache(cache_dir)
    archive = GaiaArchive(archive_url, credentials=resolve_gaia_credentials(),
                          socket_timeout_s=timeout_s)
    table = query_gaia_cone(ra_deg, dec_deg, radius_deg, release=release, g_max=g_max,
                            cache=cache, cache_mode=cache_mode,  # type: ignore[arg-type]
                            policy=RetryPolicy(attempts=attempts, timeout=timeout_s),
                            archive=archive)
    with atomic_path(out_path) as tmp:
        write_ecsv(table, tmp)
    logger.info("Gaia %s cone (%.5f, %+.5f, r=%.4f deg): %d sources (%s) -> %s",
                release.upper(), ra_deg, dec_deg, radius_deg, len(table),
                table.meta["tgp_origin"], out_path)
    return {"path": str(Path(out_path)), "n_rows": len(table),
            "origin": table.meta["tgp_origin"], "cache_key": table.meta["tgp_cache_key"]}


@task(name="check-catalog-file", description="Read and validate a local catalogue file")
def check_catalog_file_task(path: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a local CSV/VOTable/ECSV/FITS catalogue; fail clearly on a missing column."""
    table = read_catalog_file(path, required)
    return {"path": str(path), "n_rows": len(table), "columns": table.colnames}
