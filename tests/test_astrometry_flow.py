"""The solve stage under Prefect's test harness (tiny simulated night): a user's instrument
profile given as a TOML file, the residual figure and RMS in the result, and a stage that
solved nothing recorded as failed."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from flows.register import RegisterParams, register_flow
from flows.runners import RunnerSettings, make_task_runner
from flows.session import run_database
from tgpcore.simulate import simulate_night

THREADS = RunnerSettings(kind="threads", n_workers=2)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("solveflow")
    return simulate_night(root / "night", preset="tiny", seed=4, filters=("V",), n_dither=2)


def _user_profile(folder: Path) -> Path:
    """The simulator's camera profile under another name, in a file of the user's."""
    text = resources.files("tgpcore.instruments").joinpath("profiles", "tgpsim.toml").read_text()
    text = text.replace('name = "tgpsim"', 'name = "my-sim-camera"')
    path = folder / "my_camera.toml"
    path.write_text(text)
    return path


def test_profile_given_as_a_file_works_through_the_solve_stage(night, tmp_path, monkeypatch):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    prof = _user_profile(tmp_path)
    params = RegisterParams(data=str(night.raw_dir), out=str(tmp_path / "out"), runner=THREADS,
                            profile=str(prof), reference_catalog=str(night.gaia_path),
                            solvers=["header", "catalogue"])
    result = register_flow.with_options(task_runner=make_task_runner(THREADS))(params)
    reg, sol = result["registration"], result["solve"]
    assert reg["stacks"] and all(st["profile"] == "my-sim-camera"
                                 for st in reg["stacks"].values())
    assert sol["status"] == "succeeded" and not sol["failed"], sol["failed"]
    assert set(sol["solutions"]) == set(reg["stacks"])
    for s in sol["solutions"].values():
        assert s["solver"] == "catalogue" and s["rms_arcsec"] < 0.2 and s["n_matched"] >= 6
        assert s["sip_degree"] in (None, 2, 3, 4, 5)
        plot = Path(s["residual_plot"])
        assert plot.is_file() and plot.parent == Path(result["run_dir"]) / "plots"
    db, _ = run_database(tmp_path / "out")
    events = {e.stage: e.status for e in db.stage_events(result["run_id"])}
    assert events["solve"] == "succeeded"


def test_a_solve_stage_that_solved_nothing_is_failed(night, tmp_path, monkeypatch):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    # no reference catalogue and no WCS in the headers: nothing can be solved
    params = RegisterParams(data=str(night.raw_dir), out=str(tmp_path / "out"), runner=THREADS,
                            solvers=["header", "catalogue"])
    result = register_flow.with_options(task_runner=make_task_runner(THREADS))(params)
    sol = result["solve"]
    assert not sol["solutions"] and sol["failed"]
    assert sol["status"] == "failed" and "no stack solved" in sol["message"]
    assert "no reference catalogue" in sol["message"]
    db, _ = run_database(tmp_path / "out")
    events = {e.stage: e for e in db.stage_events(result["run_id"])}
    assert events["solve"].status == "failed"
    assert "no reference catalogue" in events["solve"].message
