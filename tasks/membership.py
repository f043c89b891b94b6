"""Task wrapper of the membership stage: catalogue file in, products and figures out."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task

from tgpcore.membership.run import membership_config, run_membership

__all__ = ["membership_config", "membership_task", "run_membership"]


@task(name="membership", description="Cluster membership of a Gaia-like catalogue")
def membership_task(catalog_path: str, out_dir: str, centre: tuple[float, float] | None = None,
                    radius_deg: float | None = None, options: dict[str, Any] | None = None,
                    plots: bool = True) -> dict[str, Any]:
    """Run :func:`run_membership` and log what it found."""
    logger = get_run_logger()
    out = run_membership(catalog_path, out_dir, centre, radius_deg, options, plots)
    (logger.info if out["status"] == "ok" else logger.warning)("membership: %s", out["message"])
    return out

