"""Flow: inventory of a raw night (``python -m flows.inventory --data DIR``)."""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from flows.runner import stage_run
from flows.runners import RunnerSettings
from flows.session import RunSession
from flows.settings import default_out_root
from flows.stagecli import run_stage_cli
from tasks.inventory import scan_night_task
from tgpcore.inventory import KINDS, Inventory, format_inventory


class InventoryParams(BaseModel):
    """Parameters of the inventory flow (shown as a typed form in the Prefect UI)."""

    data: str = Field(..., description="The raw night: a folder of FITS frames (read-only)")
    out: str = Field(default_factory=default_out_root,
                     description="Output root; each run writes <out>/<run-id>/")
    profile: str | None = Field(None, description="Instrument profile name or TOML file; "
                                                  "picked from TELESCOP/INSTRUME by default")
    grouping: str | None = Field(None, description="TOML file overriding cluster/pointing "
                                                   "grouping")
    runner: RunnerSettings = Field(default_factory=RunnerSettings)


def record_inventory(session: RunSession, inventory: dict[str, Any]) -> Inventory:
    """Store an inventory's frames in the run database; return it as an Inventory."""
    inv = Inventory.from_payload(inventory)
    session.db.upsert_frames(session.run_id, [r.db_record() for r in inv.records])
    return inv


def inventory_summary_markdown(inv: Inventory) -> str:
    """Markdown summary of an inventory for the Prefect UI."""
    counts = inv.counts()
    lines = [f"# Inventory of `{inv.root}`", "",
             "| kind | frames |", "|---|---|"]
    lines += [f"| {k} | {counts[k]} |" for k in KINDS]
    lines.append(f"| rejected | {counts['rejected']} |")
    if inv.warnings:
        lines += ["", "**Warnings**", ""] + [f"- {w}" for w in inv.warnings]
    rejected = inv.rejected()
    if rejected:
        lines += ["", "**Rejected files**", ""] + [f"- `{r.relpath}`: {r.reason}"
                                                   for r in rejected]
    return "\n".join(lines)


def run_inventory_stage(session: RunSession, params: InventoryParams) -> Inventory:
    """The inventory stage inside an open run: scan, record, summarise."""
    logger = get_run_logger()
    with stage_run(session, "inventory", "files") as counts:
        inventory = scan_night_task(params.data, params.profile, params.grouping)
        inv = record_inventory(session, inventory)
        counts.extra.update(inv.counts())
        counts.total = counts.done = len(inv.records)
        logger.info("inventory: %d files; %s", len(inv.records),
                    ", ".join(f"{v} {k}" for k, v in inv.counts().items()))
        for r in inv.rejected():
            logger.warning("rejected %s: %s", r.relpath, r.reason)
        for w in inv.warnings:
            logger.warning(w)
        create_markdown_artifact(inventory_summary_markdown(inv), key="inventory-summary",
                                 description="Frames found in the raw night")
        create_table_artifact(
            [{"file": r.relpath, "status": r.status, "kind": r.kind, "filter": r.filter or "",
              "exptime_s": r.exptime_s, "group": r.group_key or "", "reason": r.reason or ""}
             for r in inv.records], key="inventory-frames", description="Every file and its class")
    return inv


def inventory_step(night: Any) -> Inventory:
    """The inventory in a walk of the stage table."""
    return run_inventory_stage(night.session, night.params)


@flow(name="tgp-inventory", log_prints=True)
def inventory_flow(params: InventoryParams, run_id: str | None = None) -> dict[str, Any]:
    """Classify every file of a raw night and record the frames in the run database."""
    from flows.walk import run_stages

    night = run_stages(params, ["inventory"], run_id)
    inv = night.get("inventory")
    return {**night.result, "counts": inv.counts(), "warnings": inv.warnings}


def main(argv: list[str] | None = None) -> int:
    """Command line: classify a night and print the table."""
    result = run_stage_cli(argv, module="inventory", doc=__doc__, params_cls=InventoryParams,
                           flow_fn=inventory_flow, runner="threads",
                           options=("grouping",))
    print(format_inventory(Inventory.from_payload(result["inventory"])))
    print(f"run {result['run_id']} recorded in {result['db_url']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
