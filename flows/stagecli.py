"""The command line of the standalone stage flows (``python -m flows.<stage>``): one parser for
the options every night flow shares, the stage's own options picked by name."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from flows.runners import RunnerSettings, make_task_runner
from flows.settings import default_out_root

# parameter name -> (flag, argparse keywords)
OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "grouping": ("--grouping", {"help": "TOML file overriding the grouping"}),
    "plan_rules": ("--plan-rules", {"help": "TOML file overriding the matching rules"}),
    "cosmic_rays": ("--no-cosmic-rays", {"action": "store_false",
                                         "help": "skip cosmic-ray masking"}),
    "reference_catalog": ("--reference-catalog",
                          {"help": "local reference catalogue for plate solving"}),
    "psf": ("--psf", {"choices": ["auto", "off", "all"], "default": "auto"}),
    "standards_catalog": ("--standards",
                          {"help": "standard-star catalogue (Landolt .dat or table)"}),
    "photometric_reference": ("--photometric-reference",
                              {"help": "reference catalogue of the field"}),
    "transformation": ("--transformation",
                       {"help": "johnson | sdss_jester2005 | gaia_riello2021"}),
}


def run_stage_cli(argv: Sequence[str] | None, *, module: str, doc: str | None, params_cls: Any,
                  flow_fn: Any, options: Sequence[str] = (), runner: str = "dask"
                  ) -> dict[str, Any]:
    """Parse the command line of ``python -m flows.<module>`` and run its flow."""
    ap = argparse.ArgumentParser(prog=f"python -m flows.{module}", description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="raw night folder")
    ap.add_argument("--out", default=default_out_root(), help="output root (default: %(default)s)")
    ap.add_argument("--profile", help="instrument profile name or TOML file")
    for name in options:
        flag, kw = OPTIONS[name]
        ap.add_argument(flag, dest=name, **kw)
    ap.add_argument("--runner", choices=["dask", "threads"], default=runner)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    params = params_cls(data=args.data, out=args.out, profile=args.profile,
                        **{name: getattr(args, name) for name in options},
                        runner=RunnerSettings(kind=args.runner, n_workers=args.workers))
    return flow_fn.with_options(task_runner=make_task_runner(params.runner))(params)
