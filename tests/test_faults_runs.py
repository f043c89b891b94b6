"""Faults of whole runs on a tiny simulated night: a run killed mid-stage, two runs at once on
one PostgreSQL database, and a run that uses the astrometry API key (which must end up
nowhere)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from _services import ROOT, base_env
from astropy.io import fits
from conftest import temporary_pg_databases
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from test_astrometry_nova import KEY, FakeNova

from flows.full_run import FullRunParams, full_run_flow
from flows.runners import RunnerSettings, make_task_runner
from tgpcore.rundb import Frame, Product, RunDB, StageEvent, open_db, session_scope

pytestmark = pytest.mark.slow
VERIFY_KINDS = ("master_bias", "master_dark", "master_flat", "calibrated", "solved_stack",
                "mosaic")


@pytest.fixture(scope="module")
def api_url():
    """A Prefect API for this module's runs, in process and in subprocesses."""
    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="module")
def night(tmp_path_factory, api_url) -> Path:
    out = tmp_path_factory.mktemp("night") / "night"
    subprocess.run([sys.executable, "-m", "flows.simulate", "--preset", "tiny", "--seed", "1",
                    "--out", str(out)], env=base_env(PREFECT_API_URL=api_url), cwd=ROOT,
                   check=True, capture_output=True, timeout=300)
    return out


def _full_run(night: Path, out: Path, env: dict, to_stage: str) -> list[str]:
    return [sys.executable, "-m", "flows.full_run", "--data", str(night / "raw"), "--out",
            str(out), "--gaia-file", str(night / "truth" / "gaia.ecsv"), "--runner", "threads",
            "--to-stage", to_stage]


def _no_duplicates(db: RunDB, run_id: str) -> None:
    with session_scope(db.engine) as s:
        frames = s.scalar(select(func.count()).select_from(Frame).where(Frame.run_id == run_id))
        paths = s.scalar(select(func.count(Frame.path.distinct())).where(Frame.run_id == run_id))
        products = s.scalar(select(func.count()).select_from(Product)
                            .where(Product.run_id == run_id))
        keys = s.scalar(select(func.count(Product.key.distinct()))
                        .where(Product.run_id == run_id))
        stages = s.execute(select(StageEvent.stage, func.count()).where(
            StageEvent.run_id == run_id).group_by(StageEvent.stage)).all()
    assert frames == paths == 35
    assert products == keys
    assert all(n == 1 for _, n in stages), stages


def _products_whole(db: RunDB, run_id: str) -> int:
    checked = 0
    for p in db.products(run_id):
        if p.kind in VERIFY_KINDS and p.status == "ok":
            assert db.verify_product(p), f"{p.kind} {p.path} does not match its checksum"
            checked += 1
    return checked


def test_killed_mid_stage_then_resumed(night, api_url, tmp_path):
    out = tmp_path / "out"
    env = base_env(PREFECT_API_URL=api_url)
    url = URL.create("sqlite", database=str(out / "tgp-runs.sqlite")).render_as_string()
    log = open(tmp_path / "killed.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(_full_run(night, out, env, "mosaic"), env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    killed_in = None
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if not (out / "tgp-runs.sqlite").exists():
                continue
            try:
                engine = create_engine(url)
                with engine.connect() as conn:
                    row = conn.execute(text(
                        "SELECT e.run_id, e.stage FROM stage_events e WHERE e.status='running' "
                        "AND e.stage='register' AND (SELECT count(*) FROM products p WHERE "
                        "p.run_id=e.run_id AND p.kind='stack' AND p.status='ok') >= 2")).first()
                engine.dispose()
            except SQLAlchemyError:
                continue  # tables not there yet
            if row is not None:
                os.killpg(proc.pid, signal.SIGKILL)  # the run and its workers, mid-stage
                killed_in = row
                break
    finally:
        if proc.poll() is None and killed_in is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        log.close()
    assert killed_in is not None, "the run ended before it could be killed:\n" + \
        (tmp_path / "killed.log").read_text()[-3000:]
    first_id = killed_in[0]

    engine = open_db(url)
    db = RunDB(engine)
    try:
        first = db.get_run(first_id)
        assert first.status == "running" and first.finished_at is None  # it never finished
        stacks_before = [p for p in db.products(first_id, "stack") if p.status == "ok"]
        assert _products_whole(db, first_id) >= 27  # 6 masters and 21 frames were finished
        # every file at a product's final name is whole; a killed write leaves at most a
        # hidden temporary file, never a product
        for path in (out / first_id).rglob("*.fits"):
            if ".part" in path.name:
                assert path.name.startswith(".")
                continue
            with fits.open(path) as hdul:
                hdul.verify("exception")
                assert hdul[0].data is not None

        done = subprocess.run(_full_run(night, out, env, "mosaic"), env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        second_id = [r.id for r in db.list_runs() if r.id != first_id][0]
        assert db.get_run(second_id).status == "succeeded"
        counters = {e.stage: e.counters for e in db.stage_events(second_id)}
        # the resumed run reuses what the killed one finished instead of redoing it
        # (the stage counts its frames; its masters are counted apart)
        assert counters["calibrate"]["reused"] == 21
        assert counters["calibrate"]["masters_reused"] == 6
        assert counters["register"]["reused"] >= len(stacks_before) >= 2
        _no_duplicates(db, second_id)
        assert _products_whole(db, second_id) >= 27 + 9 + 6
        # lineage, found from what each product is keyed by: masters -> calibrated frames
        # -> stacks -> mosaics, in the resumed run's own rows
        mosaic = db.products(second_id, "mosaic")[0]
        made_from = db.products_made_from(mosaic.id)
        assert {p.run_id for p in made_from} == {second_id}
        assert {"stack", "calibrated", "master_bias", "master_flat"} <= {p.kind for p in made_from}
        flat = next(p for p in db.products(second_id, "master_flat")
                    if p.id in {q.id for q in made_from})
        redo = db.products_depending_on(flat.id)
        assert {"calibrated", "stack", "mosaic"} <= {p.kind for p in redo}
        assert mosaic.id in {p.id for p in redo}
    finally:
        engine.dispose()


@pytest.fixture()
def pg_run_db():
    name = f"tgp_conc_{uuid.uuid4().hex[:8]}"
    with temporary_pg_databases([name]) as server:
        yield server.set(database=name).render_as_string(hide_password=False)


def test_two_runs_at_once_on_one_postgres_database(night, api_url, pg_run_db, tmp_path):
    out = tmp_path / "out"
    env = base_env(PREFECT_API_URL=api_url, TGP_DATABASE_URL=pg_run_db)
    procs = [subprocess.Popen(_full_run(night, out, env, "register"), env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True) for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=900)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(30)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    engine = open_db(pg_run_db)
    db = RunDB(engine)
    try:
        runs = db.list_runs()
        assert len(runs) == 2 and runs[0].id != runs[1].id
        for run in runs:
            assert run.status == "succeeded", run.message
            _no_duplicates(db, run.id)
            assert len(db.products(run.id, "calibrated")) == 21
            assert len(db.products(run.id, "stack")) == 9
            assert _products_whole(db, run.id) == 27
    finally:
        engine.dispose()


def test_astrometry_key_is_nowhere_in_logs_database_or_products(night, api_url, tmp_path,
                                                                monkeypatch, capsys):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeNova)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeNova.uploads, FakeNova.logins = 0, []
    monkeypatch.setenv("TGP_ASTROMETRY_API_KEY", KEY)
    monkeypatch.setenv("TGP_ASTROMETRY_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    out = tmp_path / "out"
    threads = RunnerSettings(kind="threads", n_workers=2)
    # every stage, the report included (it shows parameters and messages)
    params = FullRunParams(data=str(night / "raw"), out=str(out),
                           gaia_file=str(night / "truth" / "gaia.ecsv"), solvers=["nova"],
                           runner=threads)
    try:
        state = full_run_flow.with_options(task_runner=make_task_runner(threads))(
            params, return_state=True)
    finally:
        server.shutdown()
    assert KEY in FakeNova.logins  # the run did use the key
    if state.is_completed():
        result = state.result()
        marker = f"run {result['run_id']}"
    else:  # the fake's WCS may not fit the stars; the key is what matters here
        marker = "Finished in state Failed"
        assert KEY not in str(state.message)
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        entries, offset = [], 0
        while batch := client.read_logs(
                log_filter=LogFilter(flow_run_id={"any_": [flow_run_id]}), limit=200,
                offset=offset):
            entries += batch
            offset += len(batch)
    logs = "\n".join(e.message for e in entries)
    assert marker in logs and len(entries) > 20
    assert KEY not in logs and KEY not in str(capsys.readouterr())
    needle = KEY.encode()
    scanned = 0
    for path in out.rglob("*"):  # products, the SQLite database and its WAL
        if path.is_file():
            assert needle not in path.read_bytes(), f"the key is in {path}"
            scanned += 1
    assert scanned > 40 and (out / "tgp-runs.sqlite").exists()
