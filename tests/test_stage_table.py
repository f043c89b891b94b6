"""The stage table (flows/stages.py) and the runner's status rules, without running a night."""

from __future__ import annotations

import importlib

import pytest

from flows.runner import EXIT_CODES, StageCounts, error_text, roll_up, stage_status
from flows.stages import BY_NAME, STAGE_NAMES, TABLE, stage_range, with_prerequisites


def test_every_stage_names_a_runner_that_exists_and_needs_earlier_stages():
    for i, stage in enumerate(TABLE):
        module, name = stage.run.split(":")
        assert callable(getattr(importlib.import_module(module), name)), stage.run
        earlier = set(STAGE_NAMES[:i])
        assert set(stage.needs) <= earlier and set(stage.uses) <= earlier, stage.name


def test_prerequisites_are_added_in_table_order():
    assert with_prerequisites(["photometry"]) == ["inventory", "plan", "calibrate", "register",
                                                  "photometry"]
    # a stage's 'uses' are not run for it: the cluster stages alone need no image stage
    assert with_prerequisites(stage_range("catalogs", "isochrone_fit")) == [
        "inventory", "catalogs", "membership", "crossmatch", "isochrone_fit"]
    assert with_prerequisites(["report"]) == ["report"]
    assert BY_NAME["solve"].needs == ("register",)


def test_stage_status_is_computed_from_counts():
    assert stage_status(0, 0, 0) == "succeeded"  # nothing asked
    assert stage_status(7, 0, 7) == "failed"  # nothing produced of what was asked
    assert stage_status(7, 4, 3) == "partial"
    assert stage_status(7, 6, 0) == "partial"  # lost without a recorded failure
    assert stage_status(7, 7, 0) == "succeeded"


def test_run_status_rolls_up_and_maps_to_exit_codes():
    assert roll_up(["succeeded", "succeeded"]) == "succeeded"
    assert roll_up(["succeeded", "partial"]) == "partial"
    assert roll_up(["succeeded", "failed", "skipped"]) == "partial"
    assert roll_up(["failed", "skipped"]) == "failed"
    assert roll_up([]) == "failed"
    assert roll_up(["succeeded", "idle"]) == "succeeded"  # nothing to do is no loss
    assert EXIT_CODES == {"succeeded": 0, "failed": 1, "partial": 2}


def test_progress_line_counts_and_rate():
    c = StageCounts("calibrate", "frames", total=40, done=40, reused=3, seconds=12.3)
    assert c.line() == ("calibrate     40/40 frames  (3 reused, 0 failed)  12.3 s  "
                        "(3.01 frames/s)")
    c = StageCounts("register", "stacks", total=9, done=0, failed=9, seconds=1.0,
                    message="no reference")
    assert c.line().endswith("FAILED: no reference")


def test_error_text_is_type_and_message():
    with pytest.raises(ValueError) as info:
        raise ValueError("bad frame")
    assert error_text(info.value) == "ValueError: bad frame"


def test_tgpcore_never_imports_prefect_flows_or_tasks():
    """The library boundary: no module of tgpcore imports prefect, flows or tasks."""
    import ast
    from pathlib import Path

    import tgpcore

    root = Path(tgpcore.__file__).parent
    bad = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.relative_to(root)}: {n}" for n in names
                    if n.split(".")[0] in ("prefect", "prefect_dask", "flows", "tasks")]
    assert not bad, bad


def test_an_item_lost_to_the_environment_fails_the_stage():
    """A full disk is no answer of the data: the stage is failed (the night is worth another
    try), even when other items were made; a data failure only makes it partial."""
    c = StageCounts("register", "stacks", total=3, done=2)
    c.lost("ValueError: too few stars to align")
    assert c.status == "partial" and c.failed == 1 and not c.environmental
    c.lost("DiskFullError: no space left while writing /out/r/stacks/a.fits")
    assert c.status == "failed" and c.failed == 2 and "DiskFullError" in c.message
