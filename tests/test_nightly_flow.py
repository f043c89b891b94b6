"""The nightly flow in process: nights that fail are recorded and retried a bounded number of
times; a night that is done is not processed again; the output root is enforced."""

from __future__ import annotations

import pytest
from prefect.testing.utilities import prefect_test_harness

from flows.nightly import NightlyParams, nightly_flow
from flows.runners import RunnerSettings
from flows.session import run_database
from tgpcore.rundb.nights import night_attempts

from _fitsfactory import small_night

THREADS = RunnerSettings(kind="threads", n_workers=2)


@pytest.mark.slow
def test_nightly_retries_failures_and_skips_done_nights(tmp_path, monkeypatch):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    out = tmp_path / "out"
    monkeypatch.setenv("TGP_OUT_ROOT", str(out))
    inbox = tmp_path / "inbox"
    monkeypatch.setenv("TGP_DATA_ROOT", str(inbox))
    small_night(inbox / "2026-03-01")
    small_night(inbox / "2026-03-02" / "raw")
    (inbox / "not-a-night").mkdir()
    good = NightlyParams(inbox=str(inbox), out=str(out), min_age_minutes=0, to_stage="plan",
                         max_attempts=2, runner=THREADS)
    broken = good.model_copy(update={"to_stage": "no-such-stage"})
    with prefect_test_harness(server_startup_timeout=180):
        with pytest.raises(ValueError, match="outside the output root"):
            nightly_flow(good.model_copy(update={"out": str(tmp_path / "elsewhere")}))
        first = nightly_flow(broken.model_copy(update={"max_nights": 1}),
                             fail_when_a_night_fails=False)
        state = nightly_flow(broken, return_state=True)      # the deployment's view
        second = state.result(raise_on_failure=False)
        third = nightly_flow(good)
        fourth = nightly_flow(good)
    n1, n2 = (str((inbox / n).resolve()) for n in ("2026-03-01", "2026-03-02"))
    # one night per run at most; the failure is recorded with its reason, not raised
    assert list(first["processed"]) == [n1] and first["skipped"] == [n2]
    assert first["processed"][n1]["status"] == "failed"
    assert "unknown stage 'no-such-stage'" in first["processed"][n1]["message"]
    # a failed night makes the flow Failed (not green in the UI), with each night's reason
    assert state.is_failed() and "2 of 2 night(s) failed" in state.message
    assert "unknown stage 'no-such-stage'" in state.message
    # failed nights are tried again; the first night has now had its two attempts
    assert {p: v["status"] for p, v in second["processed"].items()} == {n1: "failed",
                                                                        n2: "failed"}
    assert list(third["processed"]) == [n2] and third["skipped"] == [n1]
    assert third["processed"][n2]["status"] == "done"
    assert fourth["processed"] == {} and sorted(fourth["skipped"]) == [n1, n2]
    db, _ = run_database(out)
    assert db.night_status(n1) == "failed" and db.night_status(n2) == "done"
    assert [a.status for a in night_attempts(db, n1)] == ["failed", "failed"]
    attempts = night_attempts(db, n2)
    assert [a.status for a in attempts] == ["failed", "done"]
    run = db.get_run(attempts[-1].run_id)
    assert run.status == "succeeded" and run.data_dir == str((inbox / "2026-03-02" / "raw")
                                                             .resolve())
    assert len(db.list_runs()) == 1  # the failed attempts never got as far as a run


def test_night_outcome_retries_environmental_failures_only():
    from tgpcore.qc.failures import is_environmental, night_outcome

    assert night_outcome("succeeded", {}) == ("done", None)
    done, why = night_outcome("partial", {"photcal": "ValueError: 0 standards in U"})
    assert done == "done" and "not retried" in why
    for env in ("DiskFullError: no space left on /out (writing stacks/a.fits)",
                "OSError: Not enough space on disk",
                "OperationalError: (sqlite3.OperationalError) database or disk is full",
                "ConnectionError: Gaia archive unreachable after 4 attempts",
                "RuntimeError: HTTP 503 Service Unavailable from https://gea.esac.esa.int"):
        assert is_environmental(env), env
        assert night_outcome("partial", {"catalogs": env})[0] == "failed"
    assert night_outcome("failed", {"calibrate": "ValueError: no science frames"})[0] == "failed"
    assert not is_environmental("FileNotFoundError: no FITS files in /data/night")
