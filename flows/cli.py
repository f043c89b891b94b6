"""The ``tgp`` command: one entry point for the pipeline's flows and tools.

    tgp simulate --preset demo --seed 1 --out night/
    tgp inventory --data night/raw
    tgp plan --data night/raw
    tgp run --data night/raw --out tgp-out
    tgp runs
    tgp lineage tgp-out/<run>/mosaics/NGC2420_V.fits
    tgp lineage tgp-out/<run>/masters/flat_V.fits --down
    tgp db upgrade
"""

from __future__ import annotations

import argparse
import sys

from flows.settings import default_out_root


def _cmd_runs(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="tgp runs", description="List recent runs.")
    ap.add_argument("--out", default=default_out_root(), help="output root holding the SQLite database")
    ap.add_argument("-n", type=int, default=20, help="how many runs (default: %(default)s)")
    args = ap.parse_args(argv)
    from flows.session import run_database

    db, url = run_database(args.out)
    runs = db.list_runs(limit=args.n)
    print(f"runs in {url}")
    print(f"{'run id':<24} {'status':<10} {'started (UTC)':<20} {'seconds':>8}  data")
    for r in runs:
        started = r.started_at.strftime("%Y-%m-%d %H:%M:%S") if r.started_at else "-"
        secs = (f"{(r.finished_at - r.started_at).total_seconds():8.1f}"
                if r.finished_at and r.started_at else "       -")
        status = "abandoned" if db.is_abandoned(r) else r.status
        print(f"{r.id:<24} {status:<10} {started:<20} {secs}  {r.data_dir}")
    return 0


def _cmd_lineage(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="tgp lineage",
        description="What a product was made from (or, with --down, what was made from it).")
    ap.add_argument("product", help="product file path, product id, key or file checksum")
    ap.add_argument("--down", action="store_true",
                    help="show the products made from it (what must be redone if it changes)")
    ap.add_argument("--out", default=default_out_root(), help="output root holding the SQLite database")
    args = ap.parse_args(argv)
    from flows.session import run_database
    from tgpcore.rundb.products import format_lineage

    db, _url = run_database(args.out)
    try:
        tree = db.lineage_tree(args.product, down=args.down)
    except KeyError as exc:
        print(f"tgp lineage: {exc.args[0]}", file=sys.stderr)
        return 1
    print(format_lineage(tree))
    return 0


def _cmd_db(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="tgp db", description="Run database maintenance.")
    ap.add_argument("action", choices=["upgrade"], help="upgrade: apply Alembic migrations")
    ap.add_argument("--out", default=default_out_root(), help="output root (for the default SQLite file)")
    args = ap.parse_args(argv)
    from tgpcore.rundb.engine import resolve_database_url, upgrade

    url = resolve_database_url(args.out)
    upgrade(url)
    print(f"database at {url} is at the latest schema")
    return 0


COMMANDS = {
    "simulate": ("flows.simulate", "simulate an observing night with full truth"),
    "inventory": ("flows.inventory", "classify the frames of a raw night"),
    "plan": ("flows.commands.plan", "print and store the calibration plan of a night"),
    "run": ("flows.full_run", "run the pipeline on a night"),
    "members": ("flows.commands.members", "membership from a Gaia-like table"),
    "fit": ("flows.commands.fit", "fit age, distance, reddening, [M/H] to a catalogue"),
    "report": ("flows.report", "rebuild the night report (report.html) of a run folder"),
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``tgp <command> …`` to the flow modules' own command lines."""
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: tgp {" + ",".join([*COMMANDS, "runs", "lineage", "db"]) + "} [options]\n\n" + "\n".join(
        [f"  {name:<10} {desc}" for name, (_, desc) in COMMANDS.items()]
        + ["  runs       list recent runs with status and timings",
           "  lineage    what a product was made from (--down: what depends on it)",
           "  db         database maintenance (tgp db upgrade)"])
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "runs":
        return _cmd_runs(rest)
    if cmd == "lineage":
        return _cmd_lineage(rest)
    if cmd == "db":
        return _cmd_db(rest)
    if cmd not in COMMANDS:
        print(f"tgp: unknown command {cmd!r}\n\n{usage}", file=sys.stderr)
        return 2
    import importlib

    module = importlib.import_module(COMMANDS[cmd][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
