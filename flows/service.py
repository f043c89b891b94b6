"""The full run as a deployed service (the ``full-run`` deployment's entry point).

A deployment calls its flow with the parameters of the UI form, so this flow does what the
command line does around :func:`flows.full_run.full_run_flow`: it keeps every path parameter
inside its configured root (inputs under ``TGP_DATA_ROOT``, outputs under ``TGP_OUT_ROOT``),
starts the task runner the parameters ask for, and ends in a Prefect state that says how the
run went: Completed when it succeeded, Failed when it failed, and Failed named "Partial" (with
the stages that failed in its message) when only part of the night was processed.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed, State

from flows.full_run import FullRunParams, run
from flows.guard import check_inside, configured_out_root, confine_parameters


def guarded(params: FullRunParams) -> FullRunParams:
    """``params`` with ``out`` resolved, after checking every path parameter lies inside its
    root.

    Raises
    ------
    ValueError
        Naming the parameter outside its root.
    """
    confine_parameters(params)
    out = check_inside(params.out, configured_out_root())
    return params.model_copy(update={"out": str(out)})


def run_state(summary: dict[str, Any]) -> State:
    """The Prefect state of a finished run: Completed (succeeded), Failed named "Partial"
    (partial), or Failed, each with a message naming what failed."""
    status = summary.get("status")
    failed = summary.get("failed") or {}
    why = "; ".join(f"{k}: {v}" for k, v in failed.items())
    where = f"run {summary.get('run_id')} in {summary.get('run_dir')}"
    if status == "succeeded":
        return Completed(message=f"succeeded: {where}", data=summary)
    if status == "partial":
        return Failed(name="Partial", message=f"partial: {why} ({where})", data=summary)
    return Failed(message=f"{status or 'failed'}: {why or 'see the log'} ({where})",
                  data=summary)


@flow(name="tgp-service-full-run", log_prints=True)
def full_run_service(params: FullRunParams) -> State:
    """Run the pipeline on one night (products under the configured output root)."""
    params = guarded(params)
    get_run_logger().info("full run of %s into %s (runner: %s)", params.data, params.out,
                          params.runner.kind)
    result = run(params)
    summary = {k: result.get(k) for k in ("run_id", "run_dir", "status", "not_built",
                                          "failed", "timings")}
    state = run_state(summary)
    create_markdown_artifact(f"# Run {summary['run_id']}: {summary['status']}\n\n"
                             f"{state.message}\n", key="run-status",
                             description="How the run ended")
    return state
