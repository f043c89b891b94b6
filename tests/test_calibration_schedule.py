"""The calibration schedule: masters and frames start as soon as their masters exist, and a
failed master takes down exactly what needs it."""

from __future__ import annotations

import pytest

from tgpcore.calibration.plan import CalibrationPlan, MasterSpec, PlanEntry
from tgpcore.calibration.schedule import CalibrationSchedule, master_threads, used_masters


def _master(key, kind, **depends):
    return MasterSpec(key, kind, None, "1x1", "64x64", None, None, [f"{key}.fits"], depends)


def _frame(name, flt, dark="dark300", status="ok"):
    return PlanEntry(name, name, "science", "C", "C/p1", flt, 300.0, bias_key="bias",
                     dark_key=dark, flat_key=f"flat{flt}", status=status)


@pytest.fixture
def plan():
    masters = [_master("bias", "bias"), _master("dark300", "dark", bias="bias"),
               _master("dark60", "dark", bias="bias"),
               *(_master(f"flat{f}", "flat", bias="bias", dark="dark300") for f in "UBV"),
               _master("flatR", "flat", bias="bias")]  # no frame needs it
    frames = [_frame("u1", "U"), _frame("b1", "B"), _frame("v1", "V"), _frame("b2", "B"),
              _frame("x", "V", status="refused")]
    return CalibrationPlan({m.key: m for m in masters}, frames, [], {})


def test_used_masters_follow_the_frames_and_the_masters_inputs(plan):
    assert used_masters(plan) == {"bias", "dark300", "flatU", "flatB", "flatV"}


def test_frames_start_when_their_own_flat_exists(plan):
    s = CalibrationSchedule(plan)
    assert [m.key for m in s.ready_masters()] == ["bias"]
    assert s.ready_frames() == ([], {})
    s.finished("bias", "bias.fits")
    assert [m.key for m in s.ready_masters()] == ["dark300"]
    s.finished("dark300", "dark.fits")
    assert [m.key for m in s.ready_masters()] == ["flatU", "flatB", "flatV"]
    assert s.ready_masters() == []  # each handed out once
    s.finished("flatB", "flatB.fits")
    ready, lost = s.ready_frames()
    assert [e.path for e in ready] == ["b1", "b2"] and not lost  # flats U and V still running
    s.finished("flatU", "flatU.fits")
    s.finished("flatV", "flatV.fits")
    assert [e.path for e in s.ready_frames()[0]] == ["u1", "v1"]
    assert not s.pending


def test_a_failed_master_takes_down_what_needs_it_and_nothing_else(plan):
    s = CalibrationSchedule(plan)
    s.ready_masters()
    s.finished("bias", "bias.fits")
    s.ready_masters()
    s.failed("dark300", "CalibrationError: dark.fits: 3 non-finite pixels")
    assert s.ready_masters() == []
    assert s.reasons["flatV"] == "depends on failed master dark300"
    ready, lost = s.ready_frames()
    assert ready == [] and set(lost) == {"u1", "b1", "v1", "b2"}
    assert lost["b1"].startswith("master dark300 failed: CalibrationError: dark.fits")
    assert not s.pending


def test_a_master_alone_gets_every_workers_core(plan):
    """At the start of a night only the master bias can run: it gets every worker's core.
    Masters that start together, or beside running work, get one thread each."""
    sched = CalibrationSchedule(plan)
    ready = sched.ready_masters()
    assert [m.kind for m in ready] == ["bias"]
    assert master_threads(len(ready), 0, 2) == 2
    assert master_threads(len(ready), 0, 1) == 1
    assert master_threads(1, 1, 2) == 1          # a frame or another master still running
    assert master_threads(2, 0, 2) == 1          # two masters start together
    assert master_threads(1, 0, 0) == 1
