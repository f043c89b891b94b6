"""The deployments with real services: ``prefect server`` on PostgreSQL, a process worker in
the ``tgp-process`` pool, ``prefect deploy`` of deployments/prefect.yaml, flow runs triggered
through the API on a tiny simulated night; then the same deployments from ``serve.py``.

Everything binds 127.0.0.1 on free ports, the databases are created here and dropped after,
and every process is stopped at the end, also on failure.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from _services import BIN, ROOT, base_env, free_port, service
from conftest import temporary_pg_databases
from sqlalchemy import select, text

from tgpcore.rundb import NightAttempt, RunDB, open_db, session_scope
from tgpcore.rundb.models import Frame, Product, Run

pytestmark = pytest.mark.slow
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.fixture()
def pg_databases():
    """Two fresh PostgreSQL databases: Prefect's and tgp's run database (dropped after)."""
    names = [f"tgp_svc_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("prefect", "runs")]
    with temporary_pg_databases(names, can_fail=False) as base:
        yield {"prefect": base.set(drivername="postgresql+asyncpg", database=names[0])
               .render_as_string(hide_password=False),
               "runs": base.set(database=names[1]).render_as_string(hide_password=False)}


def _cli(args: list[str], env: dict[str, str], log: Path, timeout: float = 300) -> str:
    proc = subprocess.run([str(BIN / "prefect"), *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)
    with open(log, "a") as fh:
        fh.write(f"$ prefect {' '.join(args)}\n{proc.stdout}\n{proc.stderr}\n")
    assert proc.returncode == 0, f"prefect {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


class Api:
    """The few Prefect REST calls the test needs."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30)

    def deployment(self, name: str) -> dict:
        r = self.client.get(f"/deployments/name/{name}")
        r.raise_for_status()
        return r.json()

    def run(self, name: str, parameters: dict) -> str:
        dep = self.deployment(name)
        r = self.client.post(f"/deployments/{dep['id']}/create_flow_run",
                             json={"parameters": parameters})
        r.raise_for_status()
        return r.json()["id"]

    def wait(self, flow_run_id: str, timeout: float, services=()) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fr = self.client.get(f"/flow_runs/{flow_run_id}").json()
            if fr["state"]["type"] in FINAL:
                return fr
            for svc in services:
                assert svc.alive(), f"{svc.name} died:\n{svc.tail()}"
            time.sleep(2)
        raise TimeoutError(f"flow run {flow_run_id} not finished after {timeout} s: "
                           f"{fr['state']}\n" + "\n".join(s.tail() for s in services))

    def logs(self, flow_run_id: str, expect: str | None = None, timeout: float = 60) -> str:
        """The flow run's log messages (waiting up to ``timeout`` for ``expect`` to appear:
        logs reach the API in batches, after the state)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.client.post("/logs/filter", json={
                "logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200})
            text = "\n".join(entry["message"] for entry in r.json())
            if expect is None or expect in text or time.monotonic() > deadline:
                return text
            time.sleep(1)


def test_deployments_on_prefect_server_and_worker(pg_databases, tmp_path):
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    log = tmp_path / "cli.log"
    server_env = base_env(PREFECT_HOME=str(tmp_path / "server-home"),
                          PREFECT_API_DATABASE_CONNECTION_URL=pg_databases["prefect"],
                          PREFECT_UI_ENABLED="false")
    client_env = base_env(PREFECT_HOME=str(tmp_path / "client-home"), PREFECT_API_URL=api_url,
                          TGP_DATABASE_URL=pg_databases["runs"], TGP_OUT_ROOT=str(out),
                          TGP_INBOX=str(inbox), PREFECT_WORKER_QUERY_SECONDS="2",
                          PREFECT_RUNNER_POLL_FREQUENCY="2")
    with service("prefect-server", [str(BIN / "prefect"), "server", "start", "--host",
                                    "127.0.0.1", "--port", str(port)],
                 server_env, tmp_path / "server.log") as server:
        server.wait_for(lambda: httpx.get(f"{api_url}/health", timeout=2).status_code == 200,
                        240, "API health")
        api = Api(api_url)
        _cli(["work-pool", "create", "tgp-process", "--type", "process"], client_env, log)
        deployed = _cli(["--no-prompt", "deploy", "--all", "--prefect-file",
                         "deployments/prefect.yaml"], client_env, log)
        nightly = api.deployment("tgp-nightly/nightly")
        assert nightly["work_pool_name"] == "tgp-process", deployed
        assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 9 * * *"]
        assert api.deployment("tgp-service-full-run/full-run")["work_pool_name"] == "tgp-process"
        assert api.deployment("tgp-report/report")

        # a tiny night arrives in the inbox
        subprocess.run([str(BIN / "python"), "-m", "flows.simulate", "--preset", "tiny",
                        "--seed", "1", "--out", str(inbox / "night1")], env=client_env,
                       cwd=ROOT, check=True, capture_output=True, timeout=300)
        night = (inbox / "night1").resolve()
        nightly_params = {"params": {"min_age_minutes": 0, "gaia_file": "truth/gaia.ecsv",
                                     "runner": {"kind": "threads", "n_workers": 2}}}

        with service("prefect-worker", [str(BIN / "prefect"), "worker", "start", "--pool",
                                        "tgp-process", "--limit", "1"],
                     client_env, tmp_path / "worker.log") as worker:
            first = api.run("tgp-nightly/nightly", nightly_params)
            fr = api.wait(first, 900, (server, worker))
            assert fr["state"]["type"] == "COMPLETED", (fr["state"], api.logs(first),
                                                        worker.tail())
            # again: the night is done, nothing is processed twice
            second = api.run("tgp-nightly/nightly", nightly_params)
            fr2 = api.wait(second, 600, (server, worker))
            assert fr2["state"]["type"] == "COMPLETED", (fr2["state"], api.logs(second))
            needle = "0 processed (0 failed), 1 skipped"
            assert needle in api.logs(second, needle)

            # the full-run deployment from the form: writing outside the output root fails
            outside = tmp_path / "outside"
            bad = api.run("tgp-service-full-run/full-run", {"params": {
                "data": str(night / "raw"), "out": str(outside), "runner": {"kind": "threads"}}})
            assert api.wait(bad, 600, (server, worker))["state"]["type"] == "FAILED"
            assert "outside the output root" in api.logs(bad, "outside the output root")
            assert not outside.exists()
            # the command README.md ("Running as a service") gives
            watched = _cli(["deployment", "run", "tgp-service-full-run/full-run", "--watch",
                            "--watch-timeout", "600", "--params", json.dumps({"params": {
                                "data": str(night / "raw"), "out": str(out),
                                "to_stage": "plan", "runner": {"kind": "threads"}}})],
                           client_env, log, timeout=700)
            assert "Completed" in watched, watched
            # a partial run (its catalogue stage fails: no such Gaia file) is not green in
            # the API, and says why
            partial = api.run("tgp-service-full-run/full-run", {"params": {
                "data": str(night / "raw"), "out": str(out), "from_stage": "catalogs",
                "to_stage": "catalogs", "gaia_file": str(night / "truth" / "missing.ecsv"),
                "runner": {"kind": "threads"}}})
            st = api.wait(partial, 600, (server, worker))["state"]
            assert st["type"] == "FAILED" and st["name"] == "Partial", st
            assert "partial" in st["message"] and "catalogs" in st["message"], st
        assert worker.stop() is not None

        # the run database: one night, done once, by one run with the night's products
        engine = open_db(pg_databases["runs"])
        try:
            db = RunDB(engine)
            assert db.night_status(night) == "done"
            with session_scope(engine) as s:
                attempts = s.scalars(select(NightAttempt)).all()
                runs = s.scalars(select(Run).order_by(Run.created_at)).all()
                n_frames = {r.id: s.scalar(select(text("count(*)")).select_from(Frame)
                                           .where(Frame.run_id == r.id)) for r in runs}
                n_paths = {r.id: s.scalar(select(text("count(distinct path)"))
                                          .select_from(Frame).where(Frame.run_id == r.id))
                           for r in runs}
                # (the solver writes its WCS into the stack file: the file is the
                # solved_stack product's, and the stack product's checksum is the pre-WCS one)
                stacks = s.scalars(select(Product).where(Product.kind == "solved_stack")).all()
                mosaics = s.scalars(select(Product).where(Product.kind == "mosaic")).all()
            assert len(attempts) == 1 and attempts[0].status == "done"
            assert [r.data_dir for r in runs] == [str(night / "raw")] * 3
            night_run, plan_run, partial_run = runs
            assert partial_run.status == "partial"
            assert attempts[0].run_id == night_run.id
            assert night_run.status in ("succeeded", "partial")
            assert plan_run.status == "succeeded" and plan_run.params["to_stage"] == "plan"
            assert n_frames == n_paths == {night_run.id: 35, plan_run.id: 35, partial_run.id: 35}
            events = {e.stage: e.status for e in db.stage_events(night_run.id)}
            for stage in ("inventory", "plan", "calibrate", "register", "solve", "mosaic",
                          "catalogs", "membership"):
                assert events[stage] == "succeeded", events
            assert len(stacks) == 9 and all(db.verify_product(p) for p in stacks)
            assert len(mosaics) == 6 and all(db.verify_product(p) for p in mosaics)
            run_dir = out / night_run.id
            assert len(list((run_dir / "stacks").glob("*.fits"))) == 9
            assert len(list((run_dir / "mosaics").glob("*.fits"))) == 6
            assert (run_dir / "membership").is_dir()
            # the night's report, recorded as the run's last product
            (report,) = db.products(night_run.id, kind="report")
            assert report.path == str(run_dir / "report.html") and db.verify_product(report)
            assert events["report"] == "succeeded"
            assert not list(out.rglob("*.part*"))  # no half-written file anywhere
        finally:
            engine.dispose()

        # the same deployments from one process with serve(), on a server without the
        # worker's deployments (one way or the other, as a site would run it)
        for name in ("tgp-nightly/nightly", "tgp-service-full-run/full-run", "tgp-report/report"):
            api.client.delete(f"/deployments/{api.deployment(name)['id']}").raise_for_status()
        with service("serve", [str(BIN / "python"), "deployments/serve.py", "--nightly-cron",
                               "none"], client_env, tmp_path / "serve.log") as served:
            served.wait_for(lambda: "being served" in served.tail(), 240, "served deployments")
            again = api.run("tgp-nightly/nightly", nightly_params)
            fr3 = api.wait(again, 600, (server, served))
            assert fr3["state"]["type"] == "COMPLETED", (fr3["state"], served.tail())
            assert needle in api.logs(again, needle)
