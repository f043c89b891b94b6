"""Benchmark of the whole night: the demo night end to end, with 2 Dask workers and with 1.

Workload: the simulator's ``demo`` night (simulated once into ``--night`` if missing), run as
a user runs it: ``python -m flows.full_run --data ... --gaia-file ... --standards ...`` in a
subprocess on a fresh output folder and SQLite run database, once with ``--workers 2`` and
once with ``--workers 1``. Per-stage wall times come from the run database's stage events;
peak RSS is that of the whole process tree (Prefect, the Dask scheduler and its workers).
The "image stages" (calibrate, register, solve, mosaic, photometry) are the ones that fan out
over Dask; their summed time gives the 2-vs-1 speed-up.

    .venv/bin/python benchmarks/bench_full_run.py [--night DIR] [--keep]

The last line of the output is JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_ROOT), str(Path(__file__).resolve().parent)]

from _measure import measured  # noqa: E402

IMAGE_STAGES = ("calibrate", "register", "solve", "mosaic", "photometry")


def run_night(night: Path, out: Path, workers: int) -> tuple[float, float]:
    """The demo's full run in a subprocess (its own Prefect and Dask, a fresh SQLite DB);
    returns the wall-clock (UTC epoch) of its start and of its end."""
    env = {k: v for k, v in os.environ.items() if k != "TGP_DATABASE_URL"}
    cmd = [sys.executable, "-m", "flows.full_run", "--data", str(night / "raw"),
           "--out", str(out), "--gaia-file", str(night / "truth" / "gaia.ecsv"),
           "--standards", str(night / "truth" / "standards.ecsv"), "--workers", str(workers)]
    start = time.time()
    proc = subprocess.run(cmd, cwd=_ROOT, env=env, capture_output=True, text=True)
    end = time.time()
    if proc.returncode not in (0, 2):
        raise RuntimeError(f"full run with {workers} worker(s) failed:\n{proc.stderr[-3000:]}")
    return start, end


def start_up_and_teardown(out: Path, start: float, end: float) -> tuple[float, float]:
    """Seconds from the process's start to its first stage's start (start-up: imports, the
    Prefect server, the Dask cluster) and from its last stage's end to the process's end
    (teardown), from the run database's stage events."""
    from tgpcore.rundb.engine import open_db, resolve_database_url
    from tgpcore.rundb.repository import RunDB

    db = RunDB(open_db(resolve_database_url(out)))
    (run,) = db.list_runs(limit=2)
    events = [e for e in db.stage_events(run.id) if e.started_at is not None]
    first = min(e.started_at for e in events)
    last = max(e.finished_at or e.started_at for e in events)

    def epoch(t):
        return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()

    return epoch(first) - start, end - epoch(last)


def stage_seconds(out: Path) -> tuple[str, dict[str, float]]:
    """(run status, stage -> seconds) of the one run under ``out``."""
    from tgpcore.rundb.engine import open_db, resolve_database_url
    from tgpcore.rundb.repository import RunDB

    db = RunDB(open_db(resolve_database_url(out)))
    (run,) = db.list_runs(limit=2)
    times: dict[str, float] = {}
    for e in db.stage_events(run.id):
        if e.finished_at is not None:
            times[e.stage] = times.get(e.stage, 0.0) + (e.finished_at
                                                         - e.started_at).total_seconds()
    return run.status, times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--night", default=str(Path(tempfile.gettempdir()) / "tgp-bench-demo-night"),
                    help="where the demo night is (simulated there if missing)")
    ap.add_argument("--keep", action="store_true", help="keep the run folders")
    args = ap.parse_args()
    os.environ.pop("TGP_DATABASE_URL", None)
    night = Path(args.night)
    if not (night / "truth" / "truth.json").exists():
        from tgpcore.simulate import simulate_night

        print(f"simulating the demo night into {night} ...", flush=True)
        simulate_night(night, preset="demo", seed=1, workers=2)
    work = Path(tempfile.mkdtemp(prefix="tgp-bench-full-"))
    r: dict[str, float] = {}
    stages: dict[int, dict[str, float]] = {}
    status: dict[int, str] = {}
    edges: dict[int, tuple[float, float]] = {}
    try:
        for n in (2, 1):
            t0 = time.perf_counter()
            with measured(r, f"w{n}", interval=0.5):
                start, end = run_night(night, work / f"w{n}", n)
            status[n], stages[n] = stage_seconds(work / f"w{n}")
            edges[n] = start_up_and_teardown(work / f"w{n}", start, end)
            print(f"{n} worker(s): {time.perf_counter() - t0:.1f} s, run {status[n]}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    img = {n: sum(stages[n].get(s, 0.0) for s in IMAGE_STAGES) for n in (1, 2)}
    print(f"{'stage':<16}{'2 workers s':>14}{'1 worker s':>14}{'ratio':>8}")
    for s in stages[2]:
        a, b = stages[2][s], stages[1].get(s, float("nan"))
        print(f"{s:<16}{a:>14.1f}{b:>14.1f}{(b / a if a > 0 else float('nan')):>8.2f}")
    print(f"{'image stages':<16}{img[2]:>14.1f}{img[1]:>14.1f}{img[1] / img[2]:>8.2f}")
    print(f"{'end to end':<16}{r['w2_s']:>14.1f}{r['w1_s']:>14.1f}{r['w1_s'] / r['w2_s']:>8.2f}")
    print(f"start-up (process start -> first stage): {edges[2][0]:.1f} s; teardown (last "
          f"stage -> process end): {edges[2][1]:.1f} s (2 workers)")
    print(f"peak RSS (process tree): {r['w2_peak_mb']:.0f} MB with 2 workers, "
          f"{r['w1_peak_mb']:.0f} MB with 1")
    out = {"bench": "full_run", "night": "demo", "ours_s": round(r["w2_s"], 1),
           "ours_1worker_s": round(r["w1_s"], 1),
           "dask_speedup": round(img[1] / img[2], 2),
           "end_to_end_speedup": round(r["w1_s"] / r["w2_s"], 2),
           "peak_rss_mb": round(r["w2_peak_mb"]), "status": status[2],
           "start_up_s": round(edges[2][0], 1), "teardown_s": round(edges[2][1], 1),
           "stages_s": {k: round(v, 1) for k, v in stages[2].items()},
           "target_s": 300.0}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
