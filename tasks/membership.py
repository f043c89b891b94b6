"""Task wrapper of the membership stage: catalogue file in, products and figures out."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from tgpcore.catalogs.columns import MEMBERSHIP_REQUIRED
from tgpcore.catalogs.files import read_catalog_file
from tgpcore.io.checksum import sha256_file
from tgpcore.membership.finder import MembershipConfig, find_members
from tgpcore.membership.products import write_membership_products
from tgpcore.membership.quality import QualityCuts
from tgpcore.plots.membership import membership_figures


def membership_config(options: dict[str, Any] | None) -> MembershipConfig:
    """A :class:`MembershipConfig` from plain options (``cuts`` as a dict)."""
    opts = dict(options or {})
    cuts = QualityCuts(**opts.pop("cuts", {}))
    return MembershipConfig(cuts=cuts, **opts)


def run_membership(catalog_path: str, out_dir: str, centre: tuple[float, float] | None = None,
                   radius_deg: float | None = None, options: dict[str, Any] | None = None,
                   plots: bool = True) -> dict[str, Any]:
    """Read a Gaia-like file, find the members, write ``members.ecsv``, ``membership.json``
    and the figures into ``out_dir``; return their paths and the summary."""
    table = read_catalog_file(catalog_path, MEMBERSHIP_REQUIRED)
    result = find_members(table, centre=centre, radius_deg=radius_deg,
                          config=membership_config(options), source=str(catalog_path))
    paths = write_membership_products(result, out_dir, source=str(catalog_path))
    figures = membership_figures(result, out_dir) if plots else {}
    return {"status": result.status, "message": result.message,
            "members": str(paths["members"]), "summary_path": str(paths["summary"]),
            "checksum": sha256_file(paths["members"]),
            "figures": {k: str(v) for k, v in figures.items()}, "summary": result.summary()}


@task(name="membership", description="Cluster membership of a Gaia-like catalogue")
def membership_task(catalog_path: str, out_dir: str, centre: tuple[float, float] | None = None,
                    radius_deg: float | None = None, options: dict[str, Any] | None = None,
                    plots: bool = True) -> dict[str, Any]:
    """Run :func:`run_membership` and log what it found."""
    logger = get_run_logger()
    out = run_membership(catalog_path, out_dir, centre, radius_deg, options, plots)
    (logger.info if out["status"] == "ok" else logger.warning)("membership: %s", out["message"])
    return out

