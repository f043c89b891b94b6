"""Run a simulated night's stages up to photometry inside a Prefect test harness."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prefect.testing.utilities import prefect_test_harness

from flows.photcal import PhotcalParams
from flows.runners import RunnerSettings, make_task_runner
from flows.walk import run_stages


def stages_to_photometry(params: Any) -> SimpleNamespace:
    """Inventory, plan, calibrate, register, solve and photometry of ``params.data`` (call
    inside a flow); returns the session and every stage's outcome."""
    night = run_stages(params, ["solve", "photometry"])
    return SimpleNamespace(session=night.session, inv=night.get("inventory"),
                           plan=night.get("plan"), cal=night.get("calibrate"),
                           reg=night.get("register"), sol=night.get("solve"),
                           phot=night.get("photometry"))


def photcal_params(night: Any, out: Path, runner: RunnerSettings) -> PhotcalParams:
    """Photcal parameters for a simulated night: its raw frames, Gaia table and standards, and
    the header then catalogue plate solvers; products under ``out``."""
    return PhotcalParams(data=str(night.raw_dir), out=str(out), runner=runner,
                         reference_catalog=str(night.gaia_path),
                         solvers=["header", "catalogue"],
                         standards_catalog=str(night.standards_path))


def run_in_harness(flow_fn: Callable[[], Any], runner: RunnerSettings) -> Any:
    """Run a flow under a temporary Prefect server, on SQLite (``TGP_DATABASE_URL`` is
    set aside meanwhile)."""
    old = os.environ.pop("TGP_DATABASE_URL", None)
    try:
        with prefect_test_harness(server_startup_timeout=120):
            return flow_fn.with_options(task_runner=make_task_runner(runner))()
    finally:
        if old is not None:
            os.environ["TGP_DATABASE_URL"] = old
