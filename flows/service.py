"""The full run as a deployed service (the ``full-run`` deployment's entry point).

A deployment calls its flow with the parameters of the UI form, so this flow does what the
command line does around :func:`flows.full_run.full_run_flow`: it keeps the output inside the
configured output root (``TGP_OUT_ROOT``) and starts the task runner the parameters ask for
(one local Dask cluster for the whole run, an existing one, or threads).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.full_run import FullRunParams, run
from flows.guard import check_inside, configured_out_root


def guarded(params: FullRunParams) -> FullRunParams:
    """``params`` with ``out`` resolved, after checking it lies inside the output root.

    Raises
    ------
    ValueError
        If ``out`` is outside the configured output root.
    """
    out = check_inside(params.out, configured_out_root())
    return params.model_copy(update={"out": str(out)})


@flow(name="tgp-service-full-run", log_prints=True)
def full_run_service(params: FullRunParams) -> dict[str, Any]:
    """Run the pipeline on one night (products under the configured output root)."""
    params = guarded(params)
    get_run_logger().info("full run of %s into %s (runner: %s)", params.data, params.out,
                          params.runner.kind)
    result = run(params)
    return {k: result.get(k) for k in ("run_id", "run_dir", "status", "not_built", "failed",
                                       "timings")}
