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


#: Prefect's own logging configuration but for the console's formatter (ConsoleFormatter).
PREFECT_LOGGING_FILE = Path(__file__).with_name("prefect_logging.yml")


def configure_console(verbose: bool = False) -> None:
    """Quiet the libraries on the console unless ``verbose`` (call before Dask and Prefect
    are imported: the settings reach the Dask worker processes through the environment).

    Quiet means: Dask at WARNING, and a failed task's exception in one line, not a traceback
    per task (the traceback still goes to the Prefect API, so the UI, and to the run's log).
    """
    if verbose:
        os.environ[ENV_VERBOSE] = "1"
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "info")
        return
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    os.environ.setdefault("PREFECT_LOGGING_SETTINGS_PATH", str(PREFECT_LOGGING_FILE))
    logging.getLogger("distributed").setLevel(logging.WARNING)


class QuietTaskRuns(logging.Filter):
    """The console's filter: a task run's records below WARNING are not printed (the stage's
    progress line says what the tasks did)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith(
            "prefect.task_runs")


def tgp_changes(config: dict) -> dict:
    """What :data:`PREFECT_LOGGING_FILE` changes in Prefect's logging configuration."""
    config["formatters"]["standard"]["()"] = "flows.console.ConsoleFormatter"
    config.setdefault("filters", {})["quiet_task_runs"] = {"()": "flows.console.QuietTaskRuns"}
    config["handlers"]["console"]["filters"] = ["quiet_task_runs"]
    return config


def __getattr__(name: str):
    """``ConsoleFormatter``, built on first use (it needs Prefect, which this module does
    not import: the command line imports it before it knows whether Prefect will run)."""
    if name != "ConsoleFormatter":
        raise AttributeError(name)
    from prefect.logging.formatters import PrefectFormatter

    class ConsoleFormatter(PrefectFormatter):
        """Prefect's console format, with an exception as its last line instead of its
        traceback (the record itself is left whole for the handlers after this one)."""

        def format(self, record: logging.LogRecord) -> str:
            saved = record.exc_info, record.exc_text, record.stack_info
            record.exc_info = record.exc_text = record.stack_info = None
            try:
                text = super().format(record)
            finally:
                record.exc_info, record.exc_text, record.stack_info = saved
            return text + ("  [traceback: --verbose, or the run in the Prefect UI]"
                           if saved[0] else "")

    globals()["ConsoleFormatter"] = ConsoleFormatter
    return ConsoleFormatter


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
