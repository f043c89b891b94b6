"""Rerunning a finished run reuses every product of every stage (issue 23).

The tiny simulated night goes through the whole table twice, into the same output root, with
the threads runner. The second run's product-making stages all report ``reused == total``,
and it makes no product of its own: every product it records (but its report, which describes
that run) is one the first run made, at the same path.
"""

from __future__ import annotations

import pytest

from flows.full_run import FullRunParams, full_run_flow
from flows.runners import RunnerSettings, make_task_runner
from flows.session import run_database
from tgpcore.simulate import simulate_night

THREADS = RunnerSettings(kind="threads", n_workers=2)
pytestmark = pytest.mark.usefixtures("prefect_harness")
# the stages that make products (inventory and plan record frames, the report describes a run)
PRODUCT_STAGES = ("calibrate", "register", "solve", "mosaic", "photometry", "photcal",
                  "catalogs", "membership", "crossmatch", "isochrone_fit")


def test_rerunning_a_finished_run_reuses_every_product(tmp_path, monkeypatch):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    nt = simulate_night(tmp_path / "night", preset="tiny", seed=3)
    params = FullRunParams(data=str(nt.raw_dir), out=str(tmp_path / "out"), runner=THREADS,
                           gaia_file=str(nt.gaia_path), standards_catalog=str(nt.standards_path),
                           fit_walkers=8, fit_steps=20, fit_burn=0, fit_max_steps=0)
    flow = full_run_flow.with_options(task_runner=make_task_runner(THREADS))
    first = flow(params)
    second = flow(params)
    db, _ = run_database(tmp_path / "out")
    made = {e.stage: e for e in db.stage_events(first["run_id"])}
    again = {e.stage: e for e in db.stage_events(second["run_id"])}
    assert second["status"] == first["status"], (first["stages"], second["stages"])
    for stage in PRODUCT_STAGES:
        if made[stage].status in ("failed", "skipped"):
            continue  # nothing made the first time: nothing to reuse
        c = again[stage].counters
        assert c["total"] > 0 and c["reused"] == c["total"], (stage, c)
    # a reused photometric calibration still gives this run its QC figures and alarms
    qc_first, qc_second = db.qc(first["run_id"]), db.qc(second["run_id"])
    sky_qc = [k for k in qc_first if k.startswith("sky_mag_arcsec2:")]   # the report's sky
    assert sky_qc and all(qc_second.get(k) == qc_first[k] for k in sky_qc), sky_qc
    assert ([(a["stage"], a["subject"]) for a in db.alarms(second["run_id"])
             if a["stage"] == "photcal"]
            == [(a["stage"], a["subject"]) for a in db.alarms(first["run_id"])
                if a["stage"] == "photcal"])
    before = {(p.kind, p.key, p.path) for p in db.products(first["run_id"])}
    after = {(p.kind, p.key, p.path) for p in db.products(second["run_id"])
             if p.kind != "report"}
    assert after and after <= before, after - before
