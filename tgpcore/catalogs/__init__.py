"""Catalogue access: Gaia and VizieR with retries and caches, offline files, cross-match."""

from tgpcore.catalogs.cache import DirectoryCache, ResponseCache, request_key
from tgpcore.catalogs.columns import MissingColumnError, standardise_gaia_table
from tgpcore.catalogs.credentials import GaiaCredentials, gaia_credentials_from_env
from tgpcore.catalogs.crossmatch import CrossMatch, crossmatch_to_gaia, propagate_gaia
from tgpcore.catalogs.files import read_catalog_file
from tgpcore.catalogs.gaia import (
    CatalogUnavailableError,
    GaiaArchive,
    GaiaConeRequest,
    gaia_cone_adql,
    query_gaia_cone,
)
from tgpcore.catalogs.retry import (
    PermanentError,
    RetriesExhaustedError,
    RetryPolicy,
    call_with_retries,
)
from tgpcore.catalogs.vizier import (
    VizierService,
    cantat_gaudin_2020_cluster,
    landolt_standards,
    query_vizier,
)

__all__ = [
    "CatalogUnavailableError", "CrossMatch", "DirectoryCache", "GaiaArchive", "GaiaConeRequest",
    "GaiaCredentials", "MissingColumnError", "PermanentError", "ResponseCache",
    "RetriesExhaustedError", "RetryPolicy", "VizierService", "call_with_retries",
    "cantat_gaudin_2020_cluster", "crossmatch_to_gaia", "gaia_cone_adql",
    "gaia_credentials_from_env", "landolt_standards", "propagate_gaia", "query_gaia_cone",
    "query_vizier", "read_catalog_file", "request_key", "standardise_gaia_table",
]
