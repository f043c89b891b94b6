"""Task wrappers for the inventory and the calibration plan. No science here."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tgpcore.calibration.plan import build_plan, load_rules
from tgpcore.inventory import Inventory, scan_night


@task(name="scan-night", cache_policy=NO_CACHE, description="Classify every file of a raw night by its headers")
def scan_night_task(raw_dir: str, profile: str | None = None, grouping: str | None = None
                    ) -> dict[str, Any]:
    """Run :func:`tgpcore.inventory.scan_night`; return plain data (records and warnings)."""
    return scan_night(raw_dir, profile=profile, grouping=grouping).to_payload()


@task(name="build-calibration-plan", cache_policy=NO_CACHE, description="Assign masters to every science frame")
def build_plan_task(inventory: dict[str, Any], rules_path: str | None = None) -> dict[str, Any]:
    """Run :func:`tgpcore.calibration.plan.build_plan` on an inventory's plain data."""
    return build_plan(Inventory.from_payload(inventory), load_rules(rules_path)).to_dict()
