"""The register/solve/mosaic stages under Prefect's test harness, on a tiny simulated night."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from flows.register import RegisterParams, register_flow
from flows.runners import RunnerSettings, make_task_runner
from flows.session import run_database
from tgpcore.astrometry import header_wcs
from tgpcore.io.checksum import sha256_file
from tgpcore.simulate import simulate_night

THREADS = RunnerSettings(kind="threads", n_workers=2)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def test_register_flow_stacks_solves_and_mosaics(tmp_path, monkeypatch):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    nt = simulate_night(tmp_path / "night", preset="tiny", seed=2, filters=("V",), n_dither=2)
    params = RegisterParams(data=str(nt.raw_dir), out=str(tmp_path / "out"), runner=THREADS,
                            reference_catalog=str(nt.gaia_path),
                            solvers=["header", "catalogue", "solve-field"])
    result = register_flow.with_options(task_runner=make_task_runner(THREADS))(params)
    reg, sol, mos = result["registration"], result["solve"], result["mosaic"]
    assert reg["stacks"] and not reg["failed"]
    for sid, st in reg["stacks"].items():
        assert Path(st["path"]).exists()
        assert sid in sol["solutions"], sol["failed"]
        s = sol["solutions"][sid]
        assert s["solver"] == "catalogue" and s["rms_arcsec"] < 0.2
        # the solved stack is a new file; the stack itself stays as it was recorded
        assert s["path"] != st["path"] and header_wcs(fits.getheader(s["path"]), 0.5)
        assert sha256_file(st["path"]) == st["checksum"]
        for w in s["frame_wcs"]:
            assert header_wcs(fits.getheader(w), 0.5) is not None
    assert mos["mosaics"] and all(Path(m["path"]).exists() for m in mos["mosaics"].values())
    db, _ = run_database(tmp_path / "out")
    events = {e.stage: e.status for e in db.stage_events(result["run_id"])}
    assert events["register"] == events["solve"] == events["mosaic"] == "succeeded"
    # a re-run reuses every stack, solved stack and mosaic
    again = register_flow.with_options(task_runner=make_task_runner(THREADS))(params)
    assert again["registration"]["reused"] == len(reg["stacks"]), again["registration"]
    counters = {e.stage: e.counters for e in db.stage_events(again["run_id"])}
    for stage in ("register", "solve", "mosaic"):
        assert counters[stage]["reused"] == counters[stage]["total"] > 0, counters[stage]
    assert all(db.verify_product(p) for p in db.products(again["run_id"], "stack"))
    for sid in again["registration"]["stacks"]:
        assert header_wcs(fits.getheader(again["solve"]["solutions"][sid]["path"]), 0.5)
