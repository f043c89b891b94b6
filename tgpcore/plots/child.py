"""Figures drawn by forked processes while the parent goes on (a command line's speed-up).

A :class:`FigureChildren` forks its processes once the parent has imported the science stack
(the children share it) and before it computes: each imports matplotlib and the plotting code
while the parent computes, then waits. The parent hands them its result (through a pipe) when it
has one, writes its tables while they draw, and waits for them at the end. Each child draws
a part of the figures (``function(result, out_dir, names=part)``).

Only a single-threaded process forks (:meth:`FigureChildren.possible`): forking a process
that runs other threads can copy a lock held by one of them (logging, a database pool) into
the child.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _draw_when_told(conn, target: str, out_dir: str, names: Sequence[str]) -> None:
    """A child: import the plotting code now, draw its figures of what the parent sends."""
    draw = _resolve(target)
    result = conn.recv()
    if result is not None:
        draw(result, out_dir, names=tuple(names))


class FigureChildren:
    """Forked processes that draw ``target``'s figures of one result into ``out_dir``.

    Parameters
    ----------
    target : str
        ``"module:function"``; the function takes ``(result, out_dir, names=...)``.
    out_dir : path
        Where the figures go.
    parts : sequence of sequences of str
        The figure names each child draws (one child per part).
    """

    def __init__(self, target: str, out_dir: str | Path, parts: Sequence[Sequence[str]]):
        self.out_dir = str(out_dir)
        self.children: list[tuple[Any, Any]] = []
        ctx = mp.get_context("fork")
        for names in parts:
            conn, child_conn = ctx.Pipe()
            proc = ctx.Process(target=_draw_when_told,
                               args=(child_conn, target, self.out_dir, tuple(names)))
            proc.start()
            child_conn.close()
            self.children.append((proc, conn))

    @staticmethod
    def possible() -> bool:
        """Whether this process may fork (single-threaded, not a daemon, fork available)."""
        return (not mp.current_process().daemon and "fork" in mp.get_all_start_methods()
                and threading.active_count() == 1)

    def draw(self, result: Any) -> None:
        """Hand every child the result to draw."""
        for _, conn in self.children:
            conn.send(result)

    def cancel(self, timeout: float | None = None) -> None:
        """Nothing to draw: the children exit."""
        for _, conn in self.children:
            try:
                conn.send(None)
            except OSError:
                pass
        self._join(timeout)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for every child (at most ``timeout`` seconds in all); raise if one failed."""
        failed = self._join(timeout)
        if failed:
            raise RuntimeError(f"the figures of {self.out_dir} failed (exit codes {failed})")

    def _join(self, timeout: float | None) -> list[int | None]:
        """Join the children (a child still running after ``timeout`` is killed); the exit
        codes of those that failed."""
        import time

        end = None if timeout is None else time.monotonic() + timeout
        failed = []
        for proc, conn in self.children:
            proc.join(None if end is None else max(0.0, end - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()
            if proc.exitcode != 0:
                failed.append(proc.exitcode)
        return failed


def membership_figure_children(out_dir: str | Path) -> FigureChildren | None:
    """Two processes that will draw the membership figures (halves of about equal drawing
    time), or None where this process must not fork. Start them before the members are
    found."""
    if not FigureChildren.possible():
        return None
    return FigureChildren("tgpcore.plots.membership:membership_figures", out_dir,
                          (("cmd", "proper_motions"), ("sky", "radial_profile")))
