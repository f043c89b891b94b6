"""The night report: one self-contained ``report.html`` with everything a run produced.

    from tgpcore.report import write_report
    path = write_report(run_dir, db, stages=STAGES, db_url=url)

The report is built from the run's folder and the run database only, so it can be rebuilt
at any time from a finished run (``tgp report --run-dir DIR``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tgpcore.io.atomic import atomic_write_bytes
from tgpcore.report.gather import flatten, fmt, gather_report, safe_db_label
from tgpcore.report.html import render_html
from tgpcore.report.model import Figure, Report, Section, Table
from tgpcore.report.thumbnails import data_uri, fits_thumbnail
from tgpcore.rundb.repository import RunDB

REPORT_NAME = "report.html"

__all__ = ["REPORT_NAME", "Figure", "Report", "Section", "Table", "data_uri", "fits_thumbnail",
           "flatten", "fmt", "gather_report", "redact", "render_html", "safe_db_label",
           "write_report"]


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***`` (empty values ignored)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def write_report(run_dir: str | Path, db: RunDB | None, run_id: str | None = None, *,
                 stages: Sequence[tuple[str, str]] = (), outcome: Mapping[str, Any] | None = None,
                 db_url: str | None = None, current_stage: str | None = None,
                 secrets: Iterable[str] = (), path: str | Path | None = None
                 ) -> tuple[Path, Report]:
    """Build the report of a run and write it atomically.

    Parameters
    ----------
    run_dir : str or Path
        The run's product folder.
    db : RunDB or None
        The run database.
    run_id : str, optional
        Defaults to the folder's name.
    stages, outcome, db_url, current_stage
        See :func:`tgpcore.report.gather.gather_report`.
    secrets : iterable of str
        Values that must not appear in the page (replaced by ``***`` should any product or
        message contain one).
    path : str or Path, optional
        Where to write; ``<run_dir>/report.html`` by default.

    Returns
    -------
    (Path, Report)
        The file written and the report's content.
    """
    report = gather_report(run_dir, db, run_id, stages=stages, outcome=outcome, db_url=db_url,
                           current_stage=current_stage)
    html = redact(render_html(report), secrets)
    target = Path(path) if path is not None else Path(run_dir) / REPORT_NAME
    atomic_write_bytes(target, html.encode("utf-8"))
    return target, report
