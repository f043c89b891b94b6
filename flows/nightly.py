"""Flow: process every new night under an inbox (the ``nightly`` scheduled deployment).

    python -m flows.nightly --inbox /data/inbox --out /data/out --min-age-minutes 0

Each direct subfolder of the inbox (``TGP_INBOX``) holding FITS files is a night; its raw data
is its ``raw/`` subfolder when there is one. Each night is claimed in the run database before
it is processed and marked done afterwards (``nights`` and ``night_attempts`` tables), so no
night is processed twice, even by two schedulers at once; a failed night is retried up to
``max_attempts`` times.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.states import Failed, State
from pydantic import BaseModel, Field

from flows.full_run import FullRunParams, full_run_flow
from flows.guard import check_inside, configured_out_root, confine_parameters
from flows.runner import error_text
from flows.runners import RunnerSettings, make_task_runner, shared_cluster
from flows.session import run_database
from flows.settings import default_out_root
from tgpcore.qc.failures import night_outcome
from tgpcore.rundb.nights import Claim, claim_night, find_nights, finish_night

ENV_INBOX = "TGP_INBOX"
DEFAULT_INBOX = "inbox"


def default_inbox() -> str:
    """The inbox folder: ``$TGP_INBOX`` or ``./inbox``."""
    return os.environ.get(ENV_INBOX, "").strip() or DEFAULT_INBOX


class NightlyParams(BaseModel):
    """Parameters of the nightly flow (a typed form in the Prefect UI)."""

    inbox: str = Field(default_factory=default_inbox,
                       description="Folder whose subfolders are nights (default: $TGP_INBOX)")
    out: str = Field(default_factory=default_out_root,
                     description="Output root (default: $TGP_OUT_ROOT); must be inside it")
    raw_subdir: str | None = Field("raw", description="Raw-data subfolder of a night, if any")
    gaia_file: str | None = Field(
        None, description="Gaia-like table for every night instead of the archive; a relative "
                          "path is looked for in each night folder (e.g. truth/gaia.ecsv)")
    min_age_minutes: float = Field(10.0, ge=0, description="Wait for a night folder to be "
                                                           "unchanged this long (still copying)")
    retry_failed: bool = Field(True, description="Try nights that failed again")
    max_attempts: int = Field(3, ge=1, description="Attempts before a failing night is left")
    stale_after_hours: float = Field(12.0, gt=0, description="A night 'running' this long was "
                                                             "abandoned by a killed worker")
    max_nights: int | None = Field(None, ge=1, description="Process at most this many nights")
    to_stage: str | None = Field(None, description="Last stage of each run (default: all)")
    runner: RunnerSettings = Field(default_factory=RunnerSettings)


def _gaia_file(night: Path, gaia_file: str | None) -> str | None:
    if not gaia_file:
        return None
    inside = night / gaia_file
    if not Path(gaia_file).is_absolute() and inside.is_file():
        return str(inside)
    return gaia_file


def _who() -> str:
    try:
        from prefect.runtime import flow_run

        if flow_run.id:
            return f"flow-run {flow_run.id}"
    except Exception:  # noqa: BLE001 - outside a flow run
        pass
    return f"{socket.gethostname()}:{os.getpid()}"


def _failed_run_id(db: Any, data: Path) -> str | None:
    """The newest run of ``data`` (the one that just failed), if it got as far as starting."""
    for r in db.list_runs(limit=20):
        if r.data_dir == str(data):
            return r.id
    return None


@flow(name="tgp-nightly", log_prints=True)
def nightly_flow(params: NightlyParams | None = None, fail_when_a_night_fails: bool = True
                 ) -> dict[str, Any] | State:
    """Process every night of the inbox that is not done yet, one after the other.

    A night whose run succeeded, or was partial for the data's reasons, is done; one that
    failed, or was partial because of the environment (disk, network, database), is failed and
    tried again by a later run, up to ``max_attempts``. The flow ends Failed (not green in the
    UI) when a night failed, with each night's reason in the message.
    """
    params = params or NightlyParams()
    logger = get_run_logger()
    confine_parameters(params, relative_to=params.inbox)   # (relative: inside each night)
    out = check_inside(params.out, configured_out_root())
    db, url = run_database(out)
    nights = find_nights(params.inbox, params.raw_subdir, params.min_age_minutes * 60.0)
    logger.info("inbox %s: %d night folders", params.inbox, len(nights))
    processed: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    worker = _who()
    with shared_cluster(params.runner) as address:
        runner = make_task_runner(params.runner, address=address)
        for night in nights:
            if params.max_nights is not None and len(processed) >= params.max_nights:
                skipped.append(str(night.path))
                continue
            claim: Claim | None = claim_night(
                db, night.path, worker=worker, retry_failed=params.retry_failed,
                max_attempts=params.max_attempts, stale_after_s=params.stale_after_hours * 3600)
            if claim is None:
                skipped.append(str(night.path))
                continue
            processed[str(night.path)] = _process_night(db, params, night, claim, out, runner)
    _nights_artifact(params.inbox, processed, skipped)
    failed = [p for p, v in processed.items() if v["status"] == "failed"]
    logger.info("nightly: %d processed (%d failed), %d skipped", len(processed), len(failed),
                len(skipped))
    summary = {"inbox": str(Path(params.inbox).resolve()), "db_url": url,
               "processed": processed, "skipped": skipped}
    if failed and fail_when_a_night_fails:
        return Failed(message=f"{len(failed)} of {len(processed)} night(s) failed: " + "; ".join(
            f"{Path(p).name}: {processed[p]['message']}" for p in failed), data=summary)
    return summary


def _process_night(db: Any, params: NightlyParams, night: Any, claim: Claim, out: Path,
                   runner: Any) -> dict[str, Any]:
    """Run one claimed night's full run and record its outcome (a failure is recorded, not
    raised: one night never stops the others)."""
    logger = get_run_logger()
    logger.info("night %s: processing (attempt %d)", night.path.name, claim.attempt)
    confine_parameters(params, relative_to=night.path)
    run_params = FullRunParams(data=str(night.data), out=str(out),
                               gaia_file=_gaia_file(night.path, params.gaia_file),
                               to_stage=params.to_stage, runner=params.runner)
    try:
        result = full_run_flow.with_options(
            task_runner=runner, flow_run_name=f"night-{night.path.name}")(run_params)
    except Exception as exc:  # noqa: BLE001 - one night's failure is recorded, not fatal
        message = error_text(exc)
        run_id = _failed_run_id(db, night.data)
        finish_night(db, claim, "failed", run_id=run_id, message=message)
        logger.error("night %s failed: %s", night.path.name, message)
        return {"status": "failed", "run_id": run_id, "message": message}
    outcome, note = night_outcome(result["status"], result.get("failed") or {})
    finish_night(db, claim, outcome, run_id=result["run_id"], message=note)
    (logger.info if outcome == "done" else logger.error)(
        "night %s: %s after attempt %d (run %s, %s)%s", night.path.name, outcome,
        claim.attempt, result["run_id"], result["status"], f": {note}" if note else "")
    return {"status": outcome, "run_id": result["run_id"], "run_status": result["status"],
            "message": note}


def _nights_artifact(inbox: str, processed: dict[str, dict[str, Any]],
                     skipped: list[str]) -> None:
    """The UI's table of the nights of this run."""
    rows = [{"night": Path(p).name, "status": v["status"], "run": v["run_id"] or "",
             "message": v.get("message") or ""} for p, v in processed.items()]
    rows += [{"night": Path(p).name, "status": "skipped (done, running or given up)",
              "run": "", "message": ""} for p in skipped]
    if rows:
        create_table_artifact(rows, key="nightly-nights", description=f"Nights of {inbox}")


def main(argv: list[str] | None = None) -> int:
    """Command line: process the new nights of an inbox once."""
    ap = argparse.ArgumentParser(prog="python -m flows.nightly", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inbox", default=default_inbox())
    ap.add_argument("--out", default=default_out_root())
    ap.add_argument("--gaia-file", help="Gaia-like table (relative: inside each night)")
    ap.add_argument("--min-age-minutes", type=float, default=10.0)
    ap.add_argument("--to-stage")
    ap.add_argument("--runner", choices=["dask", "threads"], default="dask")
    ap.add_argument("--dask-address")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    # On the command line the user configures the output root; deployments keep theirs.
    os.environ["TGP_OUT_ROOT"] = str(Path(args.out).resolve())
    os.environ.setdefault("TGP_DATA_ROOT", str(Path(args.inbox).resolve()))
    params = NightlyParams(inbox=args.inbox, out=args.out, gaia_file=args.gaia_file,
                           min_age_minutes=args.min_age_minutes, to_stage=args.to_stage,
                           runner=RunnerSettings(kind=args.runner, dask_address=args.dask_address,
                                                 n_workers=args.workers))
    result = nightly_flow(params, fail_when_a_night_fails=False)
    for path, v in result["processed"].items():
        print(f"{path}: {v['status']} (run {v['run_id']}){': ' + v['message'] if v['message'] else ''}")
    for path in result["skipped"]:
        print(f"{path}: skipped")
    return 1 if any(v["status"] == "failed" for v in result["processed"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
