"""Shared bits of the benchmark scripts: wall time and peak memory of a phase."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import psutil


def tree_rss_bytes() -> int:
    """Resident memory of this process and all its children (Dask workers included)."""
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


@contextmanager
def measured(result: dict, key: str, interval: float = 0.05):
    """Time a block and sample the process tree's RSS; store ``<key>_s``, ``<key>_peak_mb``."""
    peak = [tree_rss_bytes()]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss_bytes())
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        yield
    finally:
        result[f"{key}_s"] = time.perf_counter() - t0
        stop.set()
        thread.join()
        result[f"{key}_peak_mb"] = peak[0] / 2**20


def bench_night(path):
    """The bench night at ``path`` (simulated there first if missing): its inventory and plan."""
    from pathlib import Path

    from tgpcore.calibration.plan import build_plan
    from tgpcore.inventory import scan_night
    from tgpcore.simulate import simulate_night

    night = Path(path)
    if not (night / "truth" / "truth.json").exists():
        print(f"simulating the bench night into {night} ...", flush=True)
        simulate_night(night, preset="bench", seed=1, workers=2)
    inv = scan_night(night / "raw")
    return night, inv, build_plan(inv)
