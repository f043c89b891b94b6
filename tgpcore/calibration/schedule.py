"""The order in which a calibration plan's work may run.

Each master starts as soon as the masters it is made with exist, and each frame as soon as its
own masters do: frames of one filter are calibrated while another filter's flat is still being
combined, and nobody waits for a whole kind of master to finish. A master that fails takes
down the masters and frames that need it, each with the reason; nothing else.
"""

from __future__ import annotations

from tgpcore.calibration.plan import CalibrationPlan, MasterSpec, PlanEntry

MASTER_INPUTS = ("bias", "dark")  # the masters a master itself is made with


def master_inputs(spec: MasterSpec) -> dict[str, str]:
    """The masters (role -> plan key) that ``spec`` is made with."""
    return {d: spec.depends[d] for d in MASTER_INPUTS if spec.depends.get(d)}


def frame_masters(entry: PlanEntry) -> dict[str, str]:
    """The masters (role -> plan key) that calibrate the frame of ``entry``."""
    keys = {"bias": entry.bias_key, "dark": entry.dark_key, "flat": entry.flat_key}
    return {role: key for role, key in keys.items() if key}


def master_threads(n_ready: int, n_outstanding: int, n_workers: int) -> int:
    """Threads for a master about to start: every worker's core when it is the only work the
    stage has (``n_ready`` masters starting now, ``n_outstanding`` tasks still running), as
    the master bias is at the start of a night, since everything else needs it; else one.
    """
    return max(1, n_workers) if n_ready == 1 and n_outstanding == 0 else 1


def used_masters(plan: CalibrationPlan) -> set[str]:
    """Plan keys of the masters that some frame needs, directly or through another master."""
    used = {k for e in plan.entries if e.status == "ok" for k in frame_masters(e).values()}
    todo = list(used)
    while todo:
        for key in master_inputs(plan.masters[todo.pop()]).values():
            if key not in used:
                used.add(key)
                todo.append(key)
    return used


class CalibrationSchedule:
    """What can start now, as masters finish or fail.

    Call :meth:`ready_masters` and :meth:`ready_frames` after every :meth:`finished` or
    :meth:`failed`; each master and frame is handed out once.
    """

    def __init__(self, plan: CalibrationPlan):
        self.paths: dict[str, str] = {}    # master key -> file of a finished master
        self.reasons: dict[str, str] = {}  # master key -> why it failed
        used = used_masters(plan)
        self._masters = [s for s in plan.masters.values() if s.key in used]
        self._frames = [e for e in plan.entries if e.status == "ok"]

    def finished(self, key: str, path: str) -> None:
        """Master ``key`` exists at ``path`` (built now, or reused)."""
        self.paths[key] = path

    def failed(self, key: str, reason: str) -> None:
        """Master ``key`` could not be built."""
        self.reasons[key] = reason

    def ready_masters(self) -> list[MasterSpec]:
        """Masters not handed out yet whose input masters all exist. Masters made with a
        failed master are failed here (see :attr:`reasons`)."""
        ready: list[MasterSpec] = []
        changed = True
        while changed:  # a failure can cascade (bias -> dark -> flat)
            changed, waiting = False, []
            for spec in self._masters:
                inputs = master_inputs(spec).values()
                broken = [k for k in inputs if k in self.reasons]
                if broken:
                    self.reasons[spec.key] = f"depends on failed master {broken[0]}"
                    changed = True
                elif all(k in self.paths for k in inputs):
                    ready.append(spec)
                else:
                    waiting.append(spec)
            self._masters = waiting
        return ready

    def ready_frames(self) -> tuple[list[PlanEntry], dict[str, str]]:
        """Frames not handed out yet whose masters all exist, and frames that one of their
        masters failed for (path -> reason); both are handed out once."""
        ready, lost, waiting = [], {}, []
        for e in self._frames:
            keys = frame_masters(e).values()
            broken = [k for k in keys if k in self.reasons]
            if broken:
                lost[e.path] = f"master {broken[0]} failed: {self.reasons[broken[0]]}"
            elif all(k in self.paths for k in keys):
                ready.append(e)
            else:
                waiting.append(e)
        self._frames = waiting
        return ready, lost

    @property
    def pending(self) -> bool:
        """Whether masters or frames are still waiting for masters."""
        return bool(self._masters or self._frames)
