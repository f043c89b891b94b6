"""The full run's cluster stages on a simulated demo night: catalogue (the night's Gaia table),
membership and the isochrone fit, against the simulator's truth.

Tolerances (a short chain on Gaia G, BP, RP of ~500 members): |d log age| < 0.1,
|d DM| < 0.15, |d E(B-V)| < 0.05, |d [M/H]| < 0.2. The demo night's cluster is drawn at a
grid node, so these are the fit's errors, not the interpolation's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.full_run import FullRunParams, full_run_flow
from flows.runners import RunnerSettings, make_task_runner
from flows.session import run_database
from flows.simulate import SimulateParams, simulate_flow

THREADS = RunnerSettings(kind="threads", n_workers=2)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture(scope="module")
def demo_night(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "night"
    simulate_flow(SimulateParams(preset="demo", seed=3, out=str(out), workers=2))
    return out


def test_cluster_stages_recover_the_simulated_cluster(demo_night, tmp_path, monkeypatch):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    params = FullRunParams(data=str(demo_night / "raw"), out=str(tmp_path / "out"),
                           gaia_file=str(demo_night / "truth" / "gaia.ecsv"),
                           from_stage="catalogs", to_stage="isochrone_fit", fit_walkers=12,
                           fit_steps=60, fit_burn=25, runner=THREADS)
    result = full_run_flow.with_options(task_runner=make_task_runner(THREADS))(params)
    assert result["status"] == "succeeded", result["failed"]
    truth = json.loads((demo_night / "truth" / "truth.json").read_text())["cluster"]
    name = truth["name"]
    assert result["membership"][name]["status"] == "ok"
    fit = result["isochrone_fit"][name]
    assert fit["status"] == "ok"
    s = fit["summary"]
    assert abs(s["log_age"] - truth["log_age"]) < 0.1
    assert abs(s["dm"] - truth["distance_modulus"]) < 0.15
    assert abs(s["ebv"] - truth["ebv"]) < 0.05
    assert abs(s["mh"] - truth["mh"]) < 0.2
    fit_json = json.loads(Path(fit["fit_json"]).read_text())
    assert fit_json["data"]["observables"][0] == "G"  # Gaia photometry of the members
    assert all(Path(p).stat().st_size > 10_000 for p in fit["figures"].values())
    db, _ = run_database(tmp_path / "out")
    events = {e.stage: e.status for e in db.stage_events(result["run_id"])}
    assert events["isochrone_fit"] == events["membership"] == "succeeded"
    kinds = [p.kind for p in db.products(result["run_id"])]
    assert kinds.count("isochrone_fit") == 1
