"""What a command-line run prints, and where the rest of the logging goes.

By default the console holds tgp's own lines (progress, warnings, alarms, the summary) and
the libraries' warnings: Dask's start-up and shutdown chatter (about 70 INFO lines a run) is
not shown. ``--verbose`` brings it back. Every run also writes ``<run-dir>/run.log``: tgp's,
Prefect's and Dask's records at INFO (at WARNING for Dask without ``--verbose``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

ENV_VERBOSE = "TGP_VERBOSE"
#: Loggers whose records go to a run's log file.
RUN_LOG_LOGGERS = ("tgp", "prefect", "distributed", "flows", "tasks", "tgpcore")
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_console(verbose: bool = False) -> None:
    """Quiet the libraries on the console unless ``verbose`` (call before Dask is imported:
    the setting reaches the Dask worker processes through the environment)."""
    if verbose:
        os.environ[ENV_VERBOSE] = "1"
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "info")
        return
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.getLogger("distributed").setLevel(logging.WARNING)


def attach_run_log(run_dir: str | Path) -> logging.Handler | None:
    """Send the run's records (tgp, Prefect, Dask) to ``<run_dir>/run.log``; returns the
    handler (None if the file cannot be opened: the run goes on without it)."""
    try:
        handler = logging.FileHandler(Path(run_dir) / "run.log", encoding="utf-8")
    except OSError:
        return None
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(_FORMAT))
    for name in RUN_LOG_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            if name != "distributed" or os.environ.get(ENV_VERBOSE):
                logger.setLevel(logging.INFO)
    return handler
