"""Benchmark of ``tgp members`` start-up: the command's wall time against the membership
function's own time (``tgpcore.membership.find_members``) in the same run (issue 24 asks
<= 1.3x).

Workload: the shared Gaia DR3 cone around M67 (``../shared/data/gaia_m67``), or ``--catalog``.
The command runs as a user runs it (a subprocess of the ``tgp`` entry point); it prints the
time of ``find_members`` inside it, which is the baseline. Repeated ``--repeat`` times; the
median ratio is reported.

    .venv/bin/python benchmarks/bench_members_cli.py [--catalog FILE] [--repeat 3]

The last line of the output is JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
M67 = ROOT.parent / "shared" / "data" / "gaia_m67" / "NGC2682_M67-result.csv"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", default=str(M67))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    tgp = Path(sys.executable).parent / "tgp"
    rows = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = subprocess.run([str(tgp), "members", "--catalog", args.catalog, "--out",
                                  str(Path(tmp) / "m")], capture_output=True, text=True,
                                 cwd=tmp)
            wall = time.perf_counter() - t0
        if res.returncode != 0:
            print(res.stdout, res.stderr, file=sys.stderr)
            return 1
        m = re.search(r"members ([0-9.]+) s", res.stdout)
        inner = float(m.group(1))
        rows.append((wall, inner, wall / inner))
        print(f"run {i + 1}: tgp members {wall:6.2f} s; find_members {inner:6.2f} s; "
              f"ratio {wall / inner:.2f}")
    ratios = sorted(r[2] for r in rows)
    med = ratios[len(ratios) // 2]
    print(json.dumps({"bench": "members_cli", "ours_s": round(sorted(r[0] for r in rows)[
        len(rows) // 2], 2), "baseline_s": round(sorted(r[1] for r in rows)[len(rows) // 2], 2),
        "ratio": round(med, 3), "target_ratio": 1.3}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
