"""Flow: the night report (``tgp report --run-dir DIR`` / ``python -m flows.report``).

The full run calls :func:`run_report_stage` last; it writes ``<out>/<run-id>/report.html``,
one self-contained page (images embedded) with everything the run produced and a plain
statement of the stages that were not built, failed or did not run.

    tgp report --run-dir tgp-out/20260101T220000-abc123     # rebuild a finished run's report

The command line rebuilds a report from a run's folder and the run database without starting
Prefect (``TGP_DATABASE_URL``, else ``<run-dir>/../tgp-runs.sqlite``; with neither, the report
shows the folder's files only). ``report_flow`` does the same as a Prefect flow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from pydantic import BaseModel, Field

from flows.guard import check_inside, configured_out_root
from flows.runner import stage_run
from flows.session import RunSession
from flows.stages import STAGES
from tasks.report import build_report, build_report_task
from tgpcore import __version__
from tgpcore.io.checksum import product_key
from tgpcore.rundb.engine import DEFAULT_DB_NAME, ENV_VAR, open_db
from tgpcore.rundb.repository import RunDB

REPORT_PARAMS_VERSION = 1


class ReportParams(BaseModel):
    """Parameters of the report flow (a typed form in the Prefect UI)."""

    run_dir: str = Field(..., description="The run's folder, <out>/<run-id>, inside the "
                                          "configured output root (TGP_OUT_ROOT)")


def _outcome(result: dict[str, Any]) -> dict[str, Any]:
    """The part of the full run's result that the report uses."""
    return {"not_built": list(result.get("not_built") or []),
            "failed": {k: str(v) for k, v in (result.get("failed") or {}).items()},
            "timings": dict(result.get("timings") or {})}


def _artifacts(out: dict[str, Any], run_id: str) -> None:
    create_link_artifact(key="night-report", link=Path(out["path"]).resolve().as_uri(),
                         link_text=f"report.html of run {run_id}",
                         description="The night report (self-contained HTML)")
    lines = [f"# Night report of run {run_id}", "",
             f"- `{out['path']}` ({out['size_bytes'] / 1e6:.2f} MB, {out['n_figures']} images)",
             f"- sections: {', '.join(out['sections'])}"]
    lines += [f"- **{a}**" for a in out["alerts"]]
    create_markdown_artifact("\n".join(lines), key="night-report-summary",
                             description="Night report")


def record_report(db: RunDB, run_id: str, out: dict[str, Any]) -> str:
    """Record (or, for a rebuilt report, update) a run's report product and its QC.

    Returns
    -------
    str
        The product key (one report per run).
    """
    inputs = {"run_id": run_id}
    params_rec = {"version": REPORT_PARAMS_VERSION}
    pkey = product_key("report", inputs, params_rec, __version__)
    pid = db.record_product(run_id, "report", pkey, out["path"], out["checksum"], inputs,
                            params_rec, __version__)
    db.add_qc(run_id, {"report_size_mb": out["size_bytes"] / 1e6,
                       "report_images": out["n_figures"]},
              product_id=pid, units={"report_size_mb": "MB"})
    return pkey


def run_report_stage(session: RunSession, result: dict[str, Any]) -> dict[str, Any]:
    """The report stage inside an open run (what ``flows/full_run.py`` calls last).

    Parameters
    ----------
    session : RunSession
        The run.
    result : dict
        The full run's result so far. Only ``not_built`` (list of stage names), ``failed``
        (stage name -> message) and ``timings`` (stage name -> seconds) are read, and only
        for stages the run database has no event of; everything else comes from the run
        database and ``session.run_dir``. Missing keys are fine.

    Returns
    -------
    dict
        ``status`` ('ok'), ``path`` of ``report.html``, ``checksum``, ``size_bytes``,
        ``n_figures``, ``sections`` (titles), ``alerts`` (sentences about stages that did not
        succeed) and ``product_key``.

    Raises
    ------
    Exception
        Whatever stopped the report; the stage is recorded as failed first.
    """
    logger = get_run_logger()
    with stage_run(session, "report", "reports") as counts:
        counts.total = 1
        out = build_report_task(str(session.run_dir), session.db_url, session.run_id,
                                [list(s) for s in STAGES], _outcome(result), "report")
        pkey = record_report(session.db, session.run_id, out)
        counts.done = 1
        counts.extra.update({"images": out["n_figures"], "sections": len(out["sections"]),
                             "size_bytes": out["size_bytes"]})
        counts.message = f"report: {out['path']}"
        logger.info("night report: %s (%d images, %.1f MB)%s", out["path"], out["n_figures"],
                    out["size_bytes"] / 1e6, "; " + " ".join(out["alerts"])
                    if out["alerts"] else "")
        _artifacts(out, session.run_id)
    out["status"] = "ok"
    out["product_key"] = pkey
    return out


def report_step(night: Any) -> str:
    """The report in a walk of the stage table: it describes the run so far (a broken report
    never fails the night)."""
    night.result["failed"] = night.failed
    return run_report_stage(night.session, night.result)["path"]


def run_dir_database(run_dir: str | Path) -> str | None:
    """The run database of a run folder: ``TGP_DATABASE_URL``, else the SQLite file beside
    the run folder if it exists, else None."""
    import os

    from sqlalchemy.engine import URL

    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env
    sqlite = Path(run_dir).resolve().parent / DEFAULT_DB_NAME
    return URL.create("sqlite", database=str(sqlite)).render_as_string() if sqlite.is_file() \
        else None


def rebuild_report(run_dir: str | Path, output: str | Path | None = None) -> dict[str, Any]:
    """Rebuild a finished run's report from its folder and the run database (no Prefect).

    Parameters
    ----------
    run_dir : str or Path
        The run's folder.
    output : str or Path, optional
        Where to write (``<run_dir>/report.html`` by default).

    Returns
    -------
    dict
        As :func:`tasks.report.build_report`, plus ``db_url`` (None when there is none).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    url = run_dir_database(run_dir)
    out = build_report(str(run_dir), url, run_dir.name, [list(s) for s in STAGES],
                       path=str(output) if output else None)
    out["db_url"] = url
    out["recorded"] = _record_rebuilt(url, run_dir.name, out) if output is None else False
    return out


def _record_rebuilt(url: str | None, run_id: str, out: dict[str, Any]) -> bool:
    """Update the report product of a run in the database after a rebuild (if it is there)."""
    if url is None:
        return False
    engine = open_db(url)
    try:
        db = RunDB(engine)
        if db.get_run(run_id) is None:
            return False
        record_report(db, run_id, out)
        return True
    finally:
        engine.dispose()


@flow(name="tgp-report", log_prints=True)
def report_flow(params: ReportParams) -> dict[str, Any]:
    """Rebuild the report of a finished run (its folder must be inside the configured output
    root: the form cannot make it write elsewhere)."""
    run_dir = check_inside(params.run_dir, configured_out_root())
    url = run_dir_database(run_dir)
    out = build_report_task(str(run_dir), url, run_dir.name, [list(s) for s in STAGES])
    out["recorded"] = _record_rebuilt(url, run_dir.name, out)
    _artifacts(out, run_dir.name)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: rebuild the report of a run folder."""
    ap = argparse.ArgumentParser(prog="tgp report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True, help="the run's folder, <out>/<run-id>")
    ap.add_argument("--output", help="write here instead of <run-dir>/report.html")
    args = ap.parse_args(argv)
    try:
        out = rebuild_report(args.run_dir, args.output)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {out['path']} ({out['size_bytes'] / 1e6:.2f} MB, {out['n_figures']} images)")
    if out["db_url"] is None:
        print("  no run database found: the report shows the folder's files only")
    for alert in out["alerts"]:
        print(f"  {alert}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
