"""Walk the stage table (:mod:`flows.stages`) from any stage to any stage.

``full_run`` and the standalone stage flows are ranges of the one table: the walk runs the
stages asked for and those they need (whose products are found and reused), skips a stage
whose need failed ("skipped (needs X)"), and computes each stage's status from its record
and the run's from the stages' (:func:`flows.runner.roll_up`).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flows.runner import FAILED, IDLE, SKIPPED, SUCCEEDED, error_text, roll_up
from flows.session import RunSession, closing_failed_run, open_session
from flows.stages import BY_NAME, TABLE, Stage, with_prerequisites


@dataclass
class NightRun:
    """A walk in progress: the run, its parameters and every stage's outcome so far."""

    session: RunSession
    params: Any
    outcomes: dict[str, Any] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)

    def get(self, stage: str) -> Any:
        """The outcome of a stage that ran, or None."""
        return self.outcomes.get(stage)

    @property
    def failed(self) -> dict[str, str]:
        """Stage -> reason, for every stage that failed or was skipped."""
        return {n: self.messages.get(n, s) for n, s in self.status.items()
                if s in (FAILED, SKIPPED)}


def plain(outcome: Any) -> Any:
    """An outcome as plain data (for the run's result and the report)."""
    for method in ("to_dict", "to_payload"):
        if hasattr(outcome, method):
            return getattr(outcome, method)()
    return outcome


def _runner(stage: Stage) -> Callable[[NightRun], Any]:
    module, name = stage.run.split(":")
    return getattr(importlib.import_module(module), name)


def _latest_status(session: RunSession, stage: str) -> tuple[str, str | None]:
    events = [e for e in session.db.stage_events(session.run_id) if e.stage == stage]
    if not events:
        return SUCCEEDED, None
    return events[-1].status, events[-1].message


def _skip(night: NightRun, stage: Stage, blocked: str) -> None:
    message = f"skipped (needs {blocked})"
    db = night.session.db
    db.stage_finished(db.stage_started(night.session.run_id, stage.name), SKIPPED,
                      message=f"stage '{stage.name}' {message}: '{blocked}' did not succeed")
    night.status[stage.name], night.messages[stage.name] = SKIPPED, message
    print(f"{stage.name:<13} {message}", flush=True)


def run_stage(night: NightRun, stage: Stage) -> None:
    """One stage of the walk: skipped when a need did not succeed, else run and judged."""
    blocked = [d for d in stage.needs if night.status.get(d) in (FAILED, SKIPPED)]
    if blocked:
        _skip(night, stage, blocked[0])
        return
    t0 = time.perf_counter()
    try:
        outcome = _runner(stage)(night)
    except Exception as exc:
        if stage.critical:
            raise
        night.status[stage.name], night.messages[stage.name] = FAILED, error_text(exc)
        if not any(e.stage == stage.name for e in night.session.db.stage_events(
                night.session.run_id)):  # it failed before it could record itself
            db = night.session.db
            db.stage_finished(db.stage_started(night.session.run_id, stage.name), FAILED,
                              message=error_text(exc))
    else:
        night.outcomes[stage.name] = outcome
        if stage.result and outcome is not None:
            night.result[stage.result] = plain(outcome)
        status, message = _latest_status(night.session, stage.name)
        lost = [u for u in stage.uses if night.status.get(u) in (FAILED, SKIPPED)]
        if status == SKIPPED and not lost:
            status = IDLE  # nothing to do in this range of the table: no loss
        night.status[stage.name] = status
        if message and status != SUCCEEDED:
            night.messages[stage.name] = message
    night.timings[stage.name] = round(time.perf_counter() - t0, 3)


def walk(night: NightRun, names: list[str]) -> NightRun:
    """Run ``names`` and the stages they need, in the table's order."""
    for name in with_prerequisites(names):
        run_stage(night, BY_NAME[name])
    return night


def run_status(night: NightRun) -> str:
    """The run's status: failed when a critical stage failed, else rolled up."""
    if any(night.status.get(s.name) == FAILED for s in TABLE if s.critical):
        return FAILED
    return roll_up(list(night.status.values()))


def stage_states(night: NightRun) -> dict[str, str]:
    """Each stage's state as shown: 'succeeded', 'partial', 'failed: why', 'skipped (needs X)'."""
    out = {}
    for name, status in night.status.items():
        if status == SKIPPED:
            out[name] = night.messages[name]
        elif status == IDLE:
            out[name] = "skipped (nothing to do: " + night.messages.get(name, "") + ")"
        elif status == SUCCEEDED:
            out[name] = status
        else:
            out[name] = status + (f": {night.messages[name]}" if name in night.messages else "")
    return out


def run_stages(params: Any, names: list[str], run_id: str | None = None) -> NightRun:
    """A standalone flow's body: open (or continue) a run, walk ``names`` (and what they
    need) and, for a run of its own, close it with the rolled-up status."""
    session = open_session(params.data, params.out, params.profile,
                           params.model_dump(mode="json"), run_id=run_id)
    night = NightRun(session, params)
    night.result.update({"run_id": session.run_id, "run_dir": str(session.run_dir),
                         "db_url": session.db_url})
    with closing_failed_run(session):
        walk(night, names)
    night.result["status"] = run_status(night)
    if run_id is None:
        session.db.finish_run(session.run_id, night.result["status"],
                              message="; ".join(f"{k}: {v}" for k, v in night.failed.items())
                              or None)
    return night
