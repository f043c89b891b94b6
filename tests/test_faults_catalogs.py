"""Fault: the Gaia archive is down during a full run.

A stand-in TAP server on 127.0.0.1 (``TGP_GAIA_URL``) first answers, then fails every request
with HTTP 503. The run that finds the answer in its run database's cache goes on as if nothing
had happened; a run with an empty cache retries, then fails the catalogue stage with a message
that names the service and the failure, skips the stages that need it (membership, isochrone
fit) and still finishes the night (report written, run recorded as partial).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_catalogs import GAIA_VOT, FakeService

from flows.full_run import FullRunParams, full_run_flow
from flows.runners import RunnerSettings, make_task_runner
from flows.session import run_database

from _fitsfactory import small_night

pytestmark = pytest.mark.usefixtures("prefect_harness")

THREADS = RunnerSettings(kind="threads", n_workers=2)


@pytest.fixture()
def gaia_service(monkeypatch) -> Iterator[FakeService]:
    srv = FakeService(GAIA_VOT)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    monkeypatch.delenv("TGP_OFFLINE", raising=False)
    monkeypatch.setenv("TGP_GAIA_URL", srv.url)
    yield srv
    srv.shutdown()
    srv.server_close()


def _run(night: Path, out: Path) -> dict:
    # the cluster stages only: this night's frames hold no stars (its image stages fail
    # for that, which is not what this test is about)
    params = FullRunParams(data=str(night), out=str(out), runner=THREADS,
                           from_stage="catalogs", to_stage="isochrone_fit")
    return full_run_flow.with_options(task_runner=make_task_runner(THREADS))(params)


def _posts(srv: FakeService) -> int:
    return sum(1 for r in srv.requests if r[0] == "POST")


def test_gaia_down_cached_answer_serves_and_empty_cache_fails_clearly(tmp_path, gaia_service):
    night = small_night(tmp_path / "night", darks=False)
    out = tmp_path / "out"

    first = _run(night, out)
    assert "catalogs" not in first["failed"], first["failed"]
    assert first["catalogs"] and all(v["origin"] == "network" for v in first["catalogs"].values())
    assert _posts(gaia_service) >= 1

    gaia_service.always_fail = True  # the archive goes down
    n_before = _posts(gaia_service)
    second = _run(night, out)  # same run database: its cache holds the answer
    assert "catalogs" not in second["failed"], second["failed"]
    assert all(v["origin"] == "cache" for v in second["catalogs"].values())
    assert _posts(gaia_service) == n_before  # served without asking the dead service

    third = _run(night, tmp_path / "fresh")  # a new run database: nothing cached
    assert _posts(gaia_service) - n_before >= 4  # retried (4 attempts per query)
    reason = third["failed"]["catalogs"]
    print(f"\ncatalogue stage failure: {reason}")
    assert "Gaia DR3 cone" in reason and "Service Unavailable" in reason, reason
    assert "failed after 4 attempt(s)" in reason and "no cached answer" in reason, reason
    assert third["failed"]["membership"] == "skipped (needs catalogs)"
    assert third["status"] == "partial"
    db, _ = run_database(tmp_path / "fresh")
    events = {e.stage: e.status for e in db.stage_events(third["run_id"])}
    assert events["catalogs"] == "failed" and events["inventory"] == "succeeded"
    assert events["membership"] == "skipped" and "calibrate" not in events
    assert db.get_run(third["run_id"]).status == "partial"
