"""Flow: simulate an observing night with full truth.

    python -m flows.simulate --preset demo --seed 1 --out night/
    python -m flows.simulate --preset tiny --seed 3 --out /tmp/n --set ebv=0.5 --set n_dither=3

Writes ``<out>/raw/sim_*.fits`` and ``<out>/truth/``; all science is in ``tgpcore.simulate``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from tgpcore.simulate import PRESETS, simulate_night


class SimulateParams(BaseModel):
    """Parameters of the simulation flow (shown as a typed form in the Prefect UI)."""

    out: str = Field(..., description="Output folder; gets raw/ and truth/")
    preset: Literal["tiny", "demo", "bench", "realsky"] = Field("tiny", description="Simulation preset")
    seed: int = Field(0, ge=0, description="Random seed (same seed -> identical files)")
    workers: int = Field(1, ge=1, description="Threads rendering frames")
    overrides: dict[str, Any] = Field(default_factory=dict,
                                      description="Preset fields to override, e.g. {'ebv': 0.5}")


def summary_markdown(result: dict[str, Any]) -> str:
    """Markdown summary of a simulated night for the Prefect UI."""
    lines = [f"# Simulated night `{result['preset']}` (seed {result['seed']})", "",
             f"- raw frames: `{result['raw_dir']}`", f"- truth: `{result['truth_dir']}`",
             f"- wall time: {result['seconds']:.1f} s", "", "| kind | frames |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in result["frames"].items()]
    lines += ["", f"stars {result['stars']}, cluster members {result['members']}, "
                  f"standards {result['standards']}, Gaia sources {result['gaia']}"]
    return "\n".join(lines)


def run_simulation(params: SimulateParams) -> dict[str, Any]:
    """Simulate the night and return a small JSON-ready summary (no Prefect needed)."""
    t0 = time.perf_counter()
    night = simulate_night(params.out, preset=params.preset, seed=params.seed,
                           workers=params.workers, **params.overrides)
    counts = night.params()["counts"]
    return {"preset": params.preset, "seed": params.seed, "raw_dir": str(night.raw_dir),
            "truth_dir": str(night.truth_dir), "frames": counts["frames"],
            "stars": counts["stars"], "members": counts["members"],
            "standards": counts["standards"], "gaia": counts["gaia"],
            "seconds": time.perf_counter() - t0}


@flow(name="tgp-simulate", log_prints=True)
def simulate_flow(params: SimulateParams) -> dict[str, Any]:
    """Simulate an observing night (raw frames + truth) and publish a summary artifact."""
    logger = get_run_logger()
    logger.info("simulating preset %s, seed %d into %s", params.preset, params.seed, params.out)
    result = run_simulation(params)
    logger.info("wrote %d frames (%s) in %.1f s", sum(result["frames"].values()),
                ", ".join(f"{v} {k}" for k, v in result["frames"].items()), result["seconds"])
    create_markdown_artifact(summary_markdown(result), key="simulated-night",
                             description="Frames and truth of the simulated night")
    return result


def _parse_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    if isinstance(parsed, list):
        parsed = tuple(tuple(v) if isinstance(v, list) else v for v in parsed)
    return key.strip(), parsed


def main(argv: list[str] | None = None) -> int:
    """Command line: simulate a night and print where it went."""
    ap = argparse.ArgumentParser(prog="python -m flows.simulate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="output folder (gets raw/ and truth/)")
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                    help="rendering threads; the output does not depend on it (default %(default)s)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    type=_parse_override, metavar="KEY=VALUE",
                    help="override a preset field (JSON value), repeatable")
    ap.add_argument("--no-prefect", action="store_true",
                    help="run without the Prefect flow (no API server needed)")
    args = ap.parse_args(argv)
    params = SimulateParams(out=args.out, preset=args.preset, seed=args.seed,
                            workers=args.workers, overrides=dict(args.overrides))
    result = run_simulation(params) if args.no_prefect else simulate_flow(params)
    kinds = ", ".join(f"{v} {k}" for k, v in result["frames"].items())
    print(f"simulated {args.preset} night (seed {args.seed}) in {result['seconds']:.1f} s: {kinds}")
    print(f"raw frames: {result['raw_dir']}\ntruth:      {result['truth_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
