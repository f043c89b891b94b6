"""The ``--dask-address`` path: a full run on an existing Dask cluster (a ``dask scheduler``
and a ``dask worker`` started here on 127.0.0.1)."""

from __future__ import annotations

import pytest
from _services import BIN, base_env, free_port, port_open, service
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

from flows.full_run import main as full_run_main
from flows.session import run_database


@pytest.mark.slow
def test_full_run_on_an_existing_dask_cluster(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    night = tmp_path / "night"
    with prefect_test_harness(server_startup_timeout=180):
        from flows.simulate import main as simulate_main

        assert simulate_main(["--preset", "tiny", "--seed", "1", "--out", str(night)]) == 0
        api = PREFECT_API_URL.value()
        port = free_port()
        env = base_env(PREFECT_API_URL=api)
        address = f"tcp://127.0.0.1:{port}"
        with service("dask-scheduler", [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                                        "--port", str(port), "--no-dashboard"],
                     env, tmp_path / "scheduler.log") as scheduler:
            scheduler.wait_for(lambda: port_open(port), 90, "scheduler port")
            with service("dask-worker", [str(BIN / "dask"), "worker", address, "--host",
                                         "127.0.0.1", "--nworkers", "1", "--nthreads", "2",
                                         "--no-dashboard", "--local-directory",
                                         str(tmp_path / "dask-worker")],
                         env, tmp_path / "worker.log") as worker:
                from distributed import Client

                def one_worker() -> bool:
                    with Client(address, timeout=5) as c:
                        return len(c.scheduler_info()["workers"]) == 1

                worker.wait_for(one_worker, 120, "worker registered")
                rc = full_run_main(["--data", str(night / "raw"), "--out", str(tmp_path / "out"),
                                    "--to-stage", "calibrate", "--dask-address", address])
                with Client(address, timeout=10) as c:
                    prefixes = c.run_on_scheduler(
                        lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
                    workers = c.scheduler_info()["workers"]
    assert rc == 0, capsys.readouterr().out
    # the calibration tasks ran on the external cluster's worker
    assert {"calibrate_frame_task", "build_master_task"} <= set(prefixes), prefixes
    assert len(workers) == 1
    db, _ = run_database(tmp_path / "out")
    (run,) = db.list_runs()
    assert run.status == "succeeded" and run.params["runner"]["dask_address"] == address
    calibrated = db.products(run.id, kind="calibrated")
    assert len(calibrated) == 21 and all(p.status == "ok" for p in calibrated)
    assert all(db.verify_product(p) for p in calibrated)
