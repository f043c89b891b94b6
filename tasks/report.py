"""Task wrapper of the night report: run folder and database in, ``report.html`` out."""

from __future__ import annotations

import os
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tgpcore.io.checksum import sha256_file
from tgpcore.rundb.engine import open_db
from tgpcore.rundb.repository import RunDB

# Environment variables whose values must never appear in a product.
SECRET_ENV_VARS = ("TGP_ASTROMETRY_API_KEY", "TGP_GAIA_PASSWORD")


def secrets_from_env() -> list[str]:
    """Values of the secret environment variables that are set (read where the task runs)."""
    return [v for v in (os.environ.get(name, "") for name in SECRET_ENV_VARS) if v.strip()]


def build_report(run_dir: str, db_url: str | None, run_id: str | None = None,
                 stages: list[tuple[str, str]] | None = None,
                 outcome: dict[str, Any] | None = None, current_stage: str | None = None,
                 path: str | None = None) -> dict[str, Any]:
    """Write ``report.html`` for a run and describe it.

    Parameters
    ----------
    run_dir : str
        The run's folder.
    db_url : str or None
        The run database (None: report from the folder's files only).
    run_id : str, optional
        Defaults to the folder's name.
    stages : list of (name, description), optional
        The pipeline's stages, in order.
    outcome : dict, optional
        The full run's result (``not_built``, ``failed``, ``timings``).
    current_stage : str, optional
        The stage building the report.
    path : str, optional
        Output file (``<run_dir>/report.html`` by default).

    Returns
    -------
    dict
        ``path``, ``checksum``, ``size_bytes``, ``n_figures``, ``sections`` (titles) and
        ``alerts`` (sentences about stages that did not succeed).
    """
    from tgpcore.report import write_report

    engine = open_db(db_url) if db_url else None
    try:
        out, report = write_report(run_dir, RunDB(engine) if engine is not None else None,
                                   run_id, stages=stages or [], outcome=outcome, db_url=db_url,
                                   current_stage=current_stage, secrets=secrets_from_env(),
                                   path=path)
    finally:
        if engine is not None:
            engine.dispose()
    return {"path": str(out), "checksum": sha256_file(out), "size_bytes": out.stat().st_size,
            "n_figures": len(report.figures()), "sections": [s.title for s in report.sections],
            "alerts": report.alerts}


build_report_task = task(name="night-report", cache_policy=NO_CACHE, retries=0)(build_report)
