"""``tgp plan --data DIR``: every raw file's classification, each master's frames, the masters
each frame uses, and the rejected files with their reasons.

It reads headers only (no checksums), starts no Dask cluster and no API server, and writes
nothing: ``--record`` stores the plan in the run database of ``--out`` (through the plan flow).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.settings import default_out_root


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``tgp plan``."""
    ap = argparse.ArgumentParser(prog="tgp plan", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="raw night folder")
    ap.add_argument("--profile", help="instrument profile name or TOML file")
    ap.add_argument("--grouping", help="TOML file overriding the grouping")
    ap.add_argument("--plan-rules", help="TOML file overriding the matching rules")
    ap.add_argument("--record", action="store_true",
                    help="also store the inventory and plan in the run database of --out")
    ap.add_argument("--out", default=None,
                    help="output root of the run database, with --record (default: "
                         f"{default_out_root()})")
    ap.add_argument("--runner", choices=["dask", "threads"], default="threads",
                    help=argparse.SUPPRESS)
    return ap


def night_plan_text(data: str | Path, profile: str | None = None, grouping: str | None = None,
                    plan_rules: str | None = None) -> str:
    """The plan of a raw night as text (:func:`tgpcore.calibration.plan.format_night_plan`).

    Raises
    ------
    FileNotFoundError
        ``data`` is not a folder, or holds no FITS file (the message names the folder).
    """
    from tgpcore.calibration.plan import build_plan, format_night_plan, load_rules
    from tgpcore.inventory import scan_night

    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"raw night folder {root} does not exist")
    inv = scan_night(root, profile=profile, grouping=grouping, checksum=False)
    if not inv.records:
        raise FileNotFoundError(f"no FITS files in {root}")
    return format_night_plan(inv, build_plan(inv, load_rules(plan_rules)))


def record_plan_directly(data: str | Path, out: str | Path, profile: str | None = None,
                         grouping: str | None = None, plan_rules: str | None = None
                         ) -> tuple[str, str, str]:
    """Inventory and plan a night from the library and record both as a run of the inventory
    and plan stages (what ``python -m flows.full_run --plan-only`` does, without Prefect).

    Returns
    -------
    (str, str, str)
        The plan's text, the run id and the run database's URL.
    """
    from flows.session import open_session
    from tgpcore.calibration.plan import build_plan, format_night_plan, load_rules
    from tgpcore.inventory import scan_night

    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"raw night folder {root} does not exist")
    session = open_session(root, out, profile, {"data": str(root), "profile": profile,
                                                "grouping": grouping,
                                                "plan_rules": plan_rules, "plan_only": True})
    db, run_id = session.db, session.run_id
    try:
        event = db.stage_started(run_id, "inventory")
        inv = scan_night(root, profile=profile, grouping=grouping)
        db.upsert_frames(run_id, [r.db_record() for r in inv.records])
        db.stage_finished(event, "succeeded", {"total": len(inv.records), **inv.counts()})
        event = db.stage_started(run_id, "plan")
        plan = build_plan(inv, load_rules(plan_rules))
        db.replace_plan(run_id, *plan.db_records())
        ok = sum(e.status == "ok" for e in plan.entries)
        db.stage_finished(event, "succeeded", {"masters": len(plan.masters), "frames_ok": ok,
                                               "frames_refused": len(plan.entries) - ok})
    except BaseException as exc:
        db.finish_run(run_id, "failed", message=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if session.heartbeat is not None:
            session.heartbeat.stop()
    db.finish_run(run_id, "succeeded")
    return format_night_plan(inv, plan), run_id, session.db_url


def main(argv: list[str] | None = None) -> int:
    """Print the night's plan; with ``--record`` also store it (through the plan flow)."""
    args = build_parser().parse_args(argv)
    try:
        print(night_plan_text(args.data, args.profile, args.grouping, args.plan_rules))
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"tgp plan: error: {exc}", file=sys.stderr)
        return 1
    if args.record:
        from flows.ephemeral import bind_temporary_server
        from flows.plan import record_plan

        bind_temporary_server()

        run_id, url = record_plan(args.data, args.out or default_out_root(), args.profile,
                                  args.grouping, args.plan_rules, args.runner)
        print(f"run {run_id} recorded in {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
