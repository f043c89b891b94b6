"""Runs that die are closed (issue 25): a killed run's heartbeat stops, ``tgp runs`` shows it
as abandoned, and the next run on the same output root closes it. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flows.cli import main as tgp_main
from flows.session import open_session, run_database
from tgpcore.rundb.heartbeat import Heartbeat

ROOT = Path(__file__).resolve().parents[1]


def test_heartbeat_beats_until_the_run_finishes(tmp_path, monkeypatch):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    s = open_session(tmp_path / "night", tmp_path / "out", None, {})
    s.heartbeat.stop()
    first = s.db.get_run(s.run_id).heartbeat_at
    hb = Heartbeat(s.db, s.run_id, interval_s=0.05).start()
    time.sleep(0.4)
    later = s.db.get_run(s.run_id).heartbeat_at
    assert later > first
    s.db.finish_run(s.run_id, "succeeded")
    time.sleep(0.3)
    assert not hb._thread.is_alive()          # the beat ends with the run


def test_a_run_on_another_host_is_abandoned_when_its_heartbeat_stops(tmp_path, monkeypatch):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    s = open_session(tmp_path / "night", tmp_path / "out", None, {})
    s.heartbeat.stop()
    run = s.db.get_run(s.run_id)
    run.host = "elsewhere"
    now = run.heartbeat_at
    assert not s.db.is_abandoned(run, stale_after_s=300, now=now + dt.timedelta(seconds=200))
    assert s.db.is_abandoned(run, stale_after_s=300, now=now + dt.timedelta(seconds=400))


def test_killed_run_is_abandoned_and_closed_by_the_next_run(tmp_path, monkeypatch, db_url):
    monkeypatch.setenv("TGP_DATABASE_URL", db_url)
    out = tmp_path / "out"
    code = ("import sys, time; from flows.session import open_session; "
            f"s = open_session({str(tmp_path / 'night')!r}, {str(out)!r}, None, {{}}); "
            "print(s.run_id, flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id
        db, _ = run_database(out)
        assert db.get_run(run_id).status == "running"
        assert not db.is_abandoned(db.get_run(run_id))      # alive: not abandoned
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert db.is_abandoned(db.get_run(run_id))
    assert tgp_main(["runs", "--out", str(out)]) == 0
    nxt = open_session(tmp_path / "night", out, None, {})
    nxt.heartbeat.stop()
    closed = db.get_run(run_id)
    assert closed.status == "abandoned" and closed.finished_at is not None
    assert "abandoned" in closed.message
    assert db.get_run(nxt.run_id).status == "running"


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_kill9_full_run_takes_its_temporary_server_down_and_is_closed(tmp_path, monkeypatch):
    """``kill -9`` of a command-line full run mid-calibration: its temporary Prefect server
    (uvicorn) goes with it, ``tgp runs`` says abandoned, the next run closes it and finishes."""
    from tgpcore.simulate import simulate_night

    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    nt = simulate_night(tmp_path / "night", preset="tiny", seed=1)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PYTHONPATH=str(ROOT), PREFECT_HOME=str(tmp_path / "prefect-home"))
    cmd = [sys.executable, "-m", "flows.full_run", "--data", str(nt.raw_dir), "--out",
           str(out), "--gaia-file", str(nt.gaia_path), "--runner", "threads"]
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    servers: list[int] = []
    while time.monotonic() < deadline:
        servers = [c for c in _children(proc.pid)
                   if "uvicorn" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]
        if servers and list(out.glob("*/calibrated/*.fits")):
            break
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        time.sleep(0.5)
    assert servers, "no temporary server seen"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    for _ in range(40):
        if not any(Path(f"/proc/{c}").exists() for c in servers):
            break
        time.sleep(0.25)
    assert not any(Path(f"/proc/{c}").exists() for c in servers), "orphaned uvicorn"
    db, _ = run_database(out)
    (killed,) = db.list_runs()
    assert killed.status == "running" and db.is_abandoned(killed)
    second = subprocess.run(cmd + ["--to-stage", "calibrate"], capture_output=True, text=True,
                            env=env, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert db.get_run(killed.id).status == "abandoned"
    assert not [r for r in db.list_runs() if r.status == "running"]
