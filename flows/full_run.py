"""Flow: the whole night, stage after stage (``python -m flows.full_run --data DIR``).

The stages are the table of :mod:`flows.stages`, walked by :mod:`flows.walk`
(:mod:`flows.night` holds the flow). Exit codes: 0 when the run succeeded, 2 when it was
partial, 1 when it failed.

This module stays light: ``--plan-only`` prints (and records) the calibration plan from the
library alone, with no Prefect, Dask or API server, in about a second. The flow and its
parameters (``FullRunParams``, ``full_run_flow``, ``run``) are imported from
:mod:`flows.night` when first used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.settings import default_out_root
from flows.stages import STAGE_NAMES, stage_range

_NIGHT = ("FullRunParams", "RangeOptions", "full_run_flow", "run", "close_run",
          "params_from_args", "print_outcome", "science_lines")


def __getattr__(name: str):
    """The flow's names, from :mod:`flows.night` (imported on first use: it loads Prefect)."""
    if name in _NIGHT:
        import flows.night

        return getattr(flows.night, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m flows.full_run`` and ``tgp run``."""
    ap = argparse.ArgumentParser(prog="python -m flows.full_run",
                                 description="Run the tgp pipeline on one raw night.")
    ap.add_argument("--data", required=True, help="raw night folder (never modified)")
    ap.add_argument("--verbose", action="store_true",
                    help="show the libraries' INFO logs (Dask) on the console too")
    ap.add_argument("--out", default=default_out_root(),
                    help="output root; the run writes <out>/<run-id>/ (default: %(default)s)")
    ap.add_argument("--profile", help="instrument profile name or TOML file "
                                      "(default: from TELESCOP/INSTRUME)")
    ap.add_argument("--grouping", help="TOML file overriding the cluster/pointing grouping")
    ap.add_argument("--plan-rules", help="TOML file overriding the calibration matching rules")
    ap.add_argument("--plan-only", action="store_true",
                    help="print the calibration plan, store it, and stop")
    ap.add_argument("--from-stage", choices=STAGE_NAMES)
    ap.add_argument("--to-stage", choices=STAGE_NAMES)
    ap.add_argument("--gaia-file", help="local Gaia-like table (CSV/VOTable/ECSV/FITS) instead "
                                        "of querying the Gaia archive")
    ap.add_argument("--gaia-release", choices=["dr3", "dr2"], default="dr3")
    ap.add_argument("--members", help="published member list instead of the membership "
                                      "mixture: a file (Gaia ids or positions and a "
                                      "probability column) or vizier:cantat-gaudin2020, "
                                      "vizier:hunt-reffert2023, vizier:dias2021, "
                                      "vizier:CATALOG#CLUSTER_COLUMN")
    ap.add_argument("--reference-catalog", help="reference catalogue (ra, dec) for plate "
                                                "solving; default: the --gaia-file")
    ap.add_argument("--standards", help="standard-star catalogue (Landolt nlandolt.dat, or an "
                                        "ECSV/CSV table with name, ra, dec, V, B-V, U-B)")
    ap.add_argument("--photometric-reference", help="reference catalogue of the cluster fields "
                                                    "for photometric calibration without "
                                                    "standards")
    ap.add_argument("--runner", choices=["dask", "threads"], default="dask",
                    help="task runner (default: a local Dask cluster)")
    ap.add_argument("--dask-address", help="use an existing Dask scheduler, tcp://host:8786")
    ap.add_argument("--workers", type=int, default=2, help="local Dask workers (default: 2)")
    return ap


def plan_only(args: argparse.Namespace) -> int:
    """``--plan-only``: the night's plan from the library, recorded in the run database as a
    run of the inventory and plan stages; no Prefect, Dask or API server."""
    from flows.commands.plan import record_plan_directly

    try:
        text, run_id, url = record_plan_directly(args.data, args.out, args.profile,
                                                 args.grouping, args.plan_rules)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(text)
    print()
    print(f"run {run_id}: succeeded (inventory and plan)")
    print(f"products: {Path(args.out).resolve() / run_id}")
    print(f"run database: {url}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: exit 0 when the run succeeded, 2 when partial, 1 when failed."""
    args = build_parser().parse_args(argv)
    try:
        stage_range(args.from_stage, args.to_stage)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = Path(args.data)
    if not data.is_dir():
        print(f"error: raw night folder {data} does not exist", file=sys.stderr)
        return 1
    if not any(p.is_file() for p in data.rglob("*")):
        print(f"error: no FITS files in {data}", file=sys.stderr)
        return 1
    if args.plan_only:
        return plan_only(args)
    from flows.console import configure_console
    from flows.ephemeral import bind_temporary_server

    configure_console(args.verbose)
    bind_temporary_server()
    from flows.night import params_from_args, print_outcome, run
    from flows.runner import EXIT_CODES

    try:
        params = params_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = run(params)
    except Exception as exc:  # noqa: BLE001 - the environment's failure, said in one line
        from tgpcore.qc.failures import is_environmental

        text = f"{type(exc).__name__}: {exc}"
        if not is_environmental(text):
            raise
        print(f"error: the run failed for its environment (disk, database or network), not "
              f"for its data: {text.splitlines()[0]}", file=sys.stderr)
        return 1
    print_outcome(result, params.plan_only)
    return EXIT_CODES[result["status"]]


if __name__ == "__main__":
    sys.exit(main())
