"""Serve tgp's deployments from one process, without a work pool or worker:

    PREFECT_API_URL=http://127.0.0.1:4200/api python deployments/serve.py

offers the same deployments as ``deployments/prefect.yaml`` (``full-run``, ``nightly`` on its
schedule, ``report``) and runs their flow runs in this process until it is stopped (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys

from prefect import serve

from flows.nightly import nightly_flow
from flows.report import report_flow
from flows.service import full_run_service

NIGHTLY_CRON = "0 9 * * *"


def deployments(nightly_cron: str | None = NIGHTLY_CRON) -> list:
    """The deployments to serve (``nightly_cron=None``: the nightly one without a schedule)."""
    return [
        full_run_service.to_deployment(
            name="full-run", tags=["tgp"],
            description="Run the tgp pipeline on one raw night (parameters from the UI form)."),
        nightly_flow.to_deployment(
            name="nightly", tags=["tgp"], cron=nightly_cron, concurrency_limit=1,
            description="Every new night folder under TGP_INBOX, each processed once."),
        report_flow.to_deployment(
            name="report", tags=["tgp"],
            description="Rebuild the night report of a finished run folder."),
    ]


def main(argv: list[str] | None = None) -> int:
    """Command line: serve the deployments until interrupted."""
    ap = argparse.ArgumentParser(prog="python deployments/serve.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nightly-cron", default=NIGHTLY_CRON,
                    help="schedule of the nightly deployment (default: %(default)s, UTC); "
                         "'none' for no schedule")
    ap.add_argument("--limit", type=int, default=1, help="flow runs at once (default: 1)")
    args = ap.parse_args(argv)
    cron = None if args.nightly_cron.lower() == "none" else args.nightly_cron
    serve(*deployments(cron), limit=args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
