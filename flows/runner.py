"""The one runner of every stage: key, reuse, submit, collect, record, QC and error capture.

A stage plans its work in ``tgpcore`` (typed work items) and hands each item to
:class:`StageRunner`. The runner does the bookkeeping once for every stage:

- the product key (kind, inputs, parameters, code version);
- the look-up of a finished product with that key (reuse, with the task's result stored
  beside the product as ``<product>.result.json`` so a reused item answers like a new one);
- the submit and the collection of the task's result, exceptions turned into one reason
  (:func:`error_text`);
- the product's record (with its parents), its QC figures;
- the counts (done, reused, failed) from which the stage's status is computed
  (:func:`stage_status`), the stage's record in the run database and its progress line.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgpcore import __version__
from tgpcore.io.atomic import atomic_path
from tgpcore.io.checksum import product_key
from tgpcore.qc.failures import is_environmental

SUCCEEDED, PARTIAL, FAILED, SKIPPED = "succeeded", "partial", "failed", "skipped"
IDLE = "idle"  # a stage with nothing to do in the range run (its inputs were not asked for)


def error_text(exc: BaseException) -> str:
    """One line for an exception: its type and message (the one formatting of the pipeline)."""
    return f"{type(exc).__name__}: {exc}"


def stage_status(asked: int, produced: int, failed: int) -> str:
    """A stage's status from what it was asked for and what it produced.

    Nothing asked: succeeded (there was nothing to do). Nothing produced of what was asked:
    failed. Some lost: partial.
    """
    if asked <= 0:
        return SUCCEEDED
    if produced <= 0:
        return FAILED
    return PARTIAL if failed > 0 or produced < asked else SUCCEEDED


def roll_up(statuses: Sequence[str]) -> str:
    """A run's status from its stages': failed when every stage that ran failed (or none
    ran), partial when any failed, was partial or was skipped for a failed need, else
    succeeded (an idle stage, with nothing to do in the range run, loses nothing)."""
    ran = [s for s in statuses if s not in (SKIPPED, IDLE)]
    if not ran or all(s == FAILED for s in ran):
        return FAILED
    return SUCCEEDED if all(s in (SUCCEEDED, IDLE) for s in statuses) else PARTIAL


EXIT_CODES = {SUCCEEDED: 0, FAILED: 1, PARTIAL: 2}


@dataclass
class StageCounts:
    """What a stage was asked for and what came of it."""

    stage: str
    unit: str = "items"
    total: int = 0
    done: int = 0
    reused: int = 0
    failed: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    status_override: str | None = None
    environmental: list[str] = field(default_factory=list)  # items lost to disk, network...

    @property
    def status(self) -> str:
        """Computed from the counts (a stage may mark itself failed with a reason). An item
        lost to the environment (a full disk, a service down) fails the stage: the run is to
        be tried again, not taken as the data's answer."""
        if self.environmental:
            return FAILED
        return self.status_override or stage_status(self.total, self.done, self.failed)

    def lost(self, reason: str) -> None:
        """Count one item lost, noting whether the environment lost it."""
        self.failed += 1
        if is_environmental(reason):
            self.environmental.append(reason)
            self.message = self.message or reason

    def line(self) -> str:
        """The console's progress line of the stage."""
        text = (f"{self.stage:<13} {self.done}/{self.total} {self.unit}  ({self.reused} reused, "
                f"{self.failed} failed)  {self.seconds:.1f} s")
        made = self.done - self.reused
        if self.seconds >= 5.0 and made > 0:
            text += f"  ({made / self.seconds:.2f} {self.unit}/s)"
        if self.status != SUCCEEDED:
            text += f"  {self.status.upper()}" + (f": {self.message}" if self.message else "")
        return text

    def to_counters(self) -> dict[str, Any]:
        """The counters stored with the stage event."""
        return {"unit": self.unit, "total": self.total, "done": self.done,
                "reused": self.reused, "failed": self.failed, **self.extra}


def _print(line: str) -> None:
    print(line, flush=True)


@contextlib.contextmanager
def stage_run(session: Any, stage: str, unit: str = "items",
              echo: Callable[[str], None] = _print) -> Iterator[StageCounts]:
    """Record a stage in the run database with a status computed from its counts, and print
    its progress line. An exception marks it failed (with :func:`error_text`) and propagates."""
    event = session.db.stage_started(session.run_id, stage)
    counts = StageCounts(stage, unit)
    t0 = time.perf_counter()
    try:
        yield counts
    except BaseException as exc:
        counts.seconds = time.perf_counter() - t0
        counts.status_override, counts.message = FAILED, error_text(exc)
        session.db.stage_finished(event, FAILED, counts.to_counters(), message=counts.message)
        echo(counts.line())
        raise
    counts.seconds = time.perf_counter() - t0
    session.db.stage_finished(event, counts.status, counts.to_counters(),
                              message=counts.message)
    echo(counts.line() if counts.status != SUCCEEDED or not counts.message
         else counts.line() + f"  {counts.message}")


def collect(fut: Any) -> tuple[Any, str | None]:
    """A future's result, or ``(None, reason)`` if it raised."""
    try:
        return fut.result(), None
    except Exception as exc:  # noqa: BLE001 - one item never stops the stage
        return None, error_text(exc)


class Mapped:
    """A future whose result is ``fn`` of another future's result."""

    def __init__(self, fut: Any, fn: Callable[[Any], Any]) -> None:
        self.fut, self.fn = fut, fn

    def result(self) -> Any:
        """``fn(fut.result())``."""
        return self.fn(self.fut.result())


class Deferred:
    """Work done in the flow itself, as a future: ``fn()`` runs when its result is asked."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn

    def result(self) -> Any:
        """``fn()``."""
        return self.fn()


def _sidecar(path: str | Path) -> Path:
    return Path(str(path) + ".result.json")


def write_result(path: str | Path, result: Mapping[str, Any]) -> None:
    """Store a task's result beside its product (for reuse)."""
    with atomic_path(_sidecar(path)) as tmp:
        tmp.write_text(json.dumps(dict(result), indent=1, default=str))


def read_result(path: str | Path) -> dict[str, Any] | None:
    """The task's result stored beside a product, or None."""
    p = _sidecar(path)
    return json.loads(p.read_text()) if p.is_file() else None


@dataclass
class Item:
    """One unit of a stage's work, as the runner sees it.

    ``submit`` starts the task and returns a future whose result is a mapping with ``path``,
    ``checksum`` and optionally ``qc`` and ``status``/``reason`` (``status != 'ok'`` is a
    failure).
    """

    id: str
    kind: str
    inputs: dict[str, Any]
    params: dict[str, Any]
    submit: Callable[[], Any]
    parents: tuple[int, ...] = ()
    frame_id: int | None = None
    prepare: Callable[[], None] | None = None  # non-blocking work shared by items (submits)


@dataclass
class Done:
    """One item's end: its result (reused or new), product id and key, or the reason it
    failed."""

    item: Item
    key: str
    result: dict[str, Any] | None = None
    product_id: int | None = None
    reused: bool = False
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the item produced its product."""
        return self.reason is None


class StageRunner:
    """The bookkeeping of one stage over its items (see the module's docstring)."""

    def __init__(self, session: Any, counts: StageCounts) -> None:
        self.session = session
        self.counts = counts

    def key(self, kind: str, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> str:
        """The product key: kind, inputs, parameters and the code's version."""
        return product_key(kind, dict(inputs), dict(params), __version__)

    def reuse(self, item: Item, key: str, need_result: bool = True) -> Done | None:
        """The finished product of ``key``, recorded in this run, or None."""
        found = self.session.db.find_product(key)
        if found is None:
            return None
        result = read_result(found.path) if need_result else {}
        if result is None:
            return None
        result = {**result, "path": found.path, "checksum": found.checksum}
        pid = self.record(item, key, result)
        self.counts.reused += 1
        self.counts.done += 1
        return Done(item, key, result, pid, reused=True)

    def record(self, item: Item, key: str, result: Mapping[str, Any] | None,
               failed: bool = False) -> int:
        """Record a product (or its failure) with its parents: the item's, or by default the
        recorded products among its inputs (the run database's lineage)."""
        return self.session.db.record_product(
            self.session.run_id, item.kind, key, None if failed else result["path"],
            None if failed else result.get("checksum"), item.inputs, item.params, __version__,
            status="failed" if failed else "ok", parents=list(item.parents) or None)

    def finish(self, item: Item, key: str, result: Any, reason: str | None,
               store: bool = True) -> Done:
        """Record a collected result: the product and its QC, or the failure."""
        if reason is None and isinstance(result, Mapping) and result.get("status", "ok") != "ok":
            reason = str(result.get("reason") or result.get("status"))
        if reason is not None:
            self.record(item, key, None, failed=True)
            self.counts.lost(reason)
            return Done(item, key, dict(result) if isinstance(result, Mapping) else None,
                        reason=reason)
        result = dict(result)
        if store:
            write_result(result["path"], {k: v for k, v in result.items() if k != "checksum"})
        pid = self.record(item, key, result)
        if result.get("qc"):
            self.session.db.add_qc(self.session.run_id, result["qc"], frame_id=item.frame_id,
                                   product_id=pid)
        self.counts.done += 1
        return Done(item, key, result, pid)

    def run(self, items: Sequence[Item]) -> dict[str, Done]:
        """Every item, once: reuse its product or submit its task, then collect and record."""
        self.counts.total += len(items)
        out: dict[str, Done] = {}
        todo = []
        for item in items:
            key = self.key(item.kind, item.inputs, item.params)
            done = self.reuse(item, key)
            if done is not None:
                out[item.id] = done
            else:
                todo.append((item, key))
        for item, _ in todo:  # start what the items share first, for all of them
            if item.prepare is not None:
                item.prepare()
        pending = []
        for item, key in todo:
            try:
                pending.append((item, key, item.submit()))
            except Exception as exc:  # noqa: BLE001 - a task that cannot start fails alone
                out[item.id] = self.finish(item, key, None, error_text(exc))
        for item, key, fut in pending:
            result, reason = collect(fut)
            out[item.id] = self.finish(item, key, result, reason)
        return out
