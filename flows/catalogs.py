"""Stage: the catalogues of each cluster's field (Gaia DR3 cone, or an offline file)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from flows.runner import stage_run
from flows.session import RunSession
from tasks.catalogs import check_catalog_file_task, gaia_cone_task
from tgpcore import __version__
from tgpcore.catalogs.columns import MEMBERSHIP_REQUIRED
from tgpcore.catalogs.gaia import GAIA_ARCHIVE_URL, CatalogUnavailableError
from tgpcore.footprint import cluster_footprint
from tgpcore.inventory import Inventory
from tgpcore.io.checksum import product_key, sha256_file
from tgpcore.settings import gaia_archive_url, offline


class CatalogOptions(BaseModel):
    """The catalogue stage's options (and the membership's published list)."""

    gaia_file: str | None = Field(None, description="Local Gaia-like table (CSV, VOTable, ECSV, "
                                                    "FITS) instead of querying the archive")
    gaia_release: str = Field("dr3", description="Gaia release to query: dr3 or dr2")
    members: str | None = Field(
        None, description="Published member list instead of the membership mixture: a file "
                          "(Gaia ids or positions, and a probability column) or "
                          "vizier:cantat-gaudin2020 | vizier:hunt-reffert2023 | vizier:dias2021 "
                          "| vizier:CATALOG#CLUSTER_COLUMN")

def run_catalogs_stage(session: RunSession, inv: Inventory, gaia_file: str | None = None,
                       release: str = "dr3", members: str | None = None
                       ) -> dict[str, dict[str, Any]]:
    """Get a Gaia-like catalogue covering each cluster's frames.

    With ``gaia_file`` every cluster uses that local table (checked for the needed columns);
    otherwise the Gaia archive is queried (retries with backoff; answers cached in the run
    database, so a re-run needs no network). When the archive cannot answer (offline, no
    cached answer) and a published member list was given (``members``), the list itself
    serves as the cluster's Gaia table: its stars have Gaia positions, astrometry and
    photometry, and the night's stars outside it simply stay unmatched.

    Returns
    -------
    dict
        Per cluster: ``path`` of the catalogue, ``footprint`` (centre, radius), ``origin``.
    """
    by_cluster: dict[str, list[dict]] = {}
    for r in inv.accepted("science"):
        by_cluster.setdefault(r.cluster or "?", []).append(asdict(r))
    result: dict[str, dict[str, Any]] = {}
    with stage_run(session, "catalogs", "clusters") as counts:
        if not by_cluster:
            raise ValueError("no science frames: no cluster to get a catalogue for")
        counts.total = len(by_cluster)
        for cluster, frames in sorted(by_cluster.items()):
            fp = cluster_footprint(cluster, frames)
            if fp.note:
                get_run_logger().warning("%s: %s", cluster, fp.note)
            path, origin = _catalogue(session, cluster, fp, gaia_file, release, members)
            inputs = {"catalog": sha256_file(path), "footprint": asdict(fp)}
            key = product_key("gaia_catalog", inputs, {}, __version__)
            counts.reused += session.db.find_product(key) is not None
            session.db.record_product(session.run_id, "gaia_catalog", key, path,
                                      inputs["catalog"], inputs, {"release": release},
                                      __version__)
            counts.done += 1
            result[cluster] = {"path": path, "footprint": asdict(fp), "origin": origin}
            get_run_logger().info("%s: catalogue %s (%s), cone (%.4f, %+.4f) r=%.3f deg",
                                  cluster, path, origin, fp.ra_deg, fp.dec_deg, fp.radius_deg)
        create_markdown_artifact(
            "# Catalogues\n\n| cluster | origin | centre | radius (deg) | file |\n"
            "|---|---|---|---|---|\n"
            + "\n".join(f"| {c} | {v['origin']} | {v['footprint']['ra_deg']:.4f}, "
                        f"{v['footprint']['dec_deg']:+.4f} | {v['footprint']['radius_deg']:.3f} "
                        f"| `{v['path']}` |" for c, v in result.items()),
            key="catalogs-summary")
    return result


def _catalogue(session: RunSession, cluster: str, fp: Any, gaia_file: str | None, release: str,
               members: str | None) -> tuple[str, str]:
    """A cluster's Gaia-like table and where it came from: the local file, the archive (or
    its cached answer), else the published member list when the archive cannot answer."""
    if gaia_file:
        check_catalog_file_task(gaia_file, MEMBERSHIP_REQUIRED)
        return str(Path(gaia_file).resolve()), "file"
    out_dir = session.run_dir / "catalogs"
    try:
        res = gaia_cone_task(fp.ra_deg, fp.dec_deg, fp.radius_deg,
                             str(out_dir / f"{cluster}_gaia_{release}.ecsv"),
                             release=release, cache=session.db,
                             cache_mode="offline" if offline() else "prefer",
                             archive_url=gaia_archive_url() or GAIA_ARCHIVE_URL)
        return res["path"], res["origin"]
    except CatalogUnavailableError as exc:
        if not members:
            raise
        path = _members_as_catalogue(session, members, cluster,
                                     out_dir / f"{cluster}_members_as_gaia.ecsv")
        get_run_logger().warning("%s: %s; the member list %s serves as the Gaia table",
                                 cluster, exc, members)
        return path, "published member list"


def _members_as_catalogue(session: RunSession, spec: str, cluster: str, dest: Path) -> str:
    """A published member list written as the cluster's Gaia table."""
    from tgpcore.catalogs.members import member_list
    from tgpcore.io.tables import write_table

    table = member_list(spec, cluster, cache=session.db,
                        cache_mode="offline" if offline() else "prefer")
    return str(write_table(table, dest))


def catalogs_step(night: Any) -> dict[str, dict[str, Any]]:
    """The catalogue stage in a walk of the stage table."""
    p = night.params
    return run_catalogs_stage(night.session, night.get("inventory"), getattr(p, "gaia_file", None),
                              getattr(p, "gaia_release", "dr3"), getattr(p, "members", None))
