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
