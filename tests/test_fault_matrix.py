"""The fault matrix of issue 25: each fault a test, on a tiny simulated night run as a user
runs it (``python -m flows.full_run`` in a subprocess, threads runner, offline).

Faults: the output disk full during calibration, stacking and mosaics (a tmpfs of a size
measured from a tiny night's products: masters 3.5 MB, calibrated frames 14 MB, stacks 8.5 MB,
mosaics 7.4 MB); the run database's disk full; ``kill -9`` during each image stage; an empty
and a missing raw folder. For each: the run's final status and exit code, no frame wrongly
rejected, no ``.part`` file left, no run left ``running``; and the re-run (after the disk is
grown) reuses every product finished before the fault (their files are not rewritten) and
succeeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tgpcore.io.atomic import is_temporary

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
IMAGE_PRODUCTS = ("masters", "calibrated", "stacks", "mosaics")


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Path:
    from tgpcore.simulate import simulate_night

    nt = simulate_night(tmp_path_factory.mktemp("night") / "night", preset="tiny", seed=1)
    return Path(nt.raw_dir).parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "TGP_DATABASE_URL")}
    env.update(PYTHONPATH=str(ROOT), TGP_OFFLINE="1", PREFECT_HOME=str(tmp_path / "ph"),
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180", **extra)
    return env


def _cmd(night: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "flows.full_run", "--data", str(night / "raw"), "--out",
            str(out), "--gaia-file", str(night / "truth" / "gaia.ecsv"), "--standards",
            str(night / "truth" / "standards.ecsv"), "--runner", "threads", *extra]


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a tmpfs of a given size (MB); grow it with ``grow(mb)``. Needs root."""
    mounted: list[Path] = []

    class Mount:
        def __call__(self, name: str, mb: float) -> Path:
            path = tmp_path / name
            path.mkdir()
            res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(mb * 1024)}k",
                                  "tmpfs", str(path)], capture_output=True, text=True)
            if res.returncode != 0:
                pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
            mounted.append(path)
            return path

        @staticmethod
        def grow(path: Path, mb: float) -> None:
            subprocess.run(["mount", "-o", f"remount,size={int(mb * 1024)}k", str(path)],
                           check=True)

    yield Mount()
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _db(out: Path, url: str | None = None):
    from tgpcore.rundb.engine import open_db, resolve_database_url
    from tgpcore.rundb.repository import RunDB

    return RunDB(open_db(url or resolve_database_url(out)))


def _files(run_dir: Path) -> dict[str, tuple[int, int]]:
    """Product file -> (inode, mtime_ns) of the image products of a run."""
    out = {}
    for sub in IMAGE_PRODUCTS:
        for p in (run_dir / sub).glob("*"):
            if p.is_file() and not is_temporary(p):
                st = p.stat()
                out[str(p.relative_to(run_dir))] = (st.st_ino, st.st_mtime_ns)
    return out


def _no_leftovers(root: Path) -> None:
    left = [p for p in root.rglob("*") if p.is_file() and is_temporary(p)]
    assert not left, f".part files left: {left[:3]}"


def _no_rejected_frames(db, run_id: str) -> None:
    from sqlalchemy import select

    from tgpcore.rundb import Frame, session_scope

    with session_scope(db.engine) as s:
        bad = s.execute(select(Frame.path, Frame.reason).where(
            Frame.run_id == run_id, Frame.status == "rejected")).all()
    assert not bad, f"frames marked rejected by an environmental fault: {bad[:3]}"


def _no_run_running(db) -> None:
    assert not [r.id for r in db.list_runs(100) if r.status == "running"]


def _rerun_closes_and_reuses(night: Path, out: Path, env: dict, db, dead_id: str) -> None:
    """Run the night again on the same output root: it succeeds (or is partial), closes the
    dead run as abandoned, leaves no temporaries, and rewrites none of the dead run's
    finished products (same inode and mtime)."""
    before = _files(out / dead_id)
    second = subprocess.run(_cmd(night, out), capture_output=True, text=True, env=env,
                            timeout=1200)
    assert second.returncode in (0, 2), (second.stdout + second.stderr)[-3000:]
    assert db.get_run(dead_id).status == "abandoned"
    _no_run_running(db)
    _no_leftovers(out)
    now = _files(out / dead_id)
    rewritten = [rel for rel, stamp in before.items() if now.get(rel) != stamp]
    assert not rewritten, rewritten


@pytest.mark.parametrize("where,mb", [("calibrate", 8), ("register", 20), ("mosaic", 37)])
def test_output_disk_full(night, tmp_path, tmpfs, where, mb):
    out = tmpfs("out", mb)
    db_url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    env = _env(tmp_path, TGP_DATABASE_URL=db_url)
    first = subprocess.run(_cmd(night, out), capture_output=True, text=True, env=env,
                           timeout=1200)
    text = first.stdout + first.stderr
    assert first.returncode in (1, 2), text[-3000:]
    assert "Traceback" not in first.stdout
    db = _db(out, db_url)
    (run,) = db.list_runs()
    assert run.status in ("failed", "partial"), run.status
    assert "disk" in text.lower() or "space" in text.lower(), text[-3000:]
    events = {e.stage: e.status for e in db.stage_events(run.id)}
    assert events.get(where) in ("failed", "partial"), events
    _no_rejected_frames(db, run.id)
    _no_leftovers(out)
    _no_run_running(db)
    before = _files(out / run.id)
    assert before or where == "calibrate"
    tmpfs.grow(out, 400)
    second = subprocess.run(_cmd(night, out), capture_output=True, text=True, env=env,
                            timeout=1200)
    assert second.returncode in (0, 2), (second.stdout + second.stderr)[-3000:]
    runs = db.list_runs()
    new = next(r for r in runs if r.id != run.id)
    after = _files(out / new.id) if (out / new.id).exists() else {}
    after.update(_files(out / run.id))
    # what was finished before the fault is not rebuilt: same file, same inode and mtime
    for rel, stamp in before.items():
        assert after.get(rel) == stamp, f"{rel} was rewritten"
    _no_leftovers(out)
    _no_run_running(db)


def test_run_database_disk_full(night, tmp_path, tmpfs):
    dbdir = tmpfs("db", 0.35)
    out = tmp_path / "out"
    env = _env(tmp_path, TGP_DATABASE_URL=f"sqlite:///{dbdir / 'runs.sqlite'}")
    res = subprocess.run(_cmd(night, out), capture_output=True, text=True, env=env,
                         timeout=1200)
    text = res.stdout + res.stderr
    assert res.returncode == 1, text[-3000:]
    assert "database or disk is full" in text or "disk" in text.lower(), text[-3000:]
    _no_leftovers(out)


@pytest.mark.parametrize("stage,product", [("calibrate", "calibrated/*.fits"),
                                           ("register", "stacks/*.fits"),
                                           ("mosaic", "mosaics/*.fits")])
def test_kill9_during_an_image_stage(night, tmp_path, stage, product):
    out = tmp_path / "out"
    env = _env(tmp_path)
    proc = subprocess.Popen(_cmd(night, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and not list(out.glob(f"*/{product}")):
        assert proc.poll() is None, "the run ended before the stage to kill"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    db = _db(out)
    (killed,) = db.list_runs()
    assert db.is_abandoned(killed)
    _rerun_closes_and_reuses(night, out, env, db, killed.id)


@pytest.mark.parametrize("case", ["empty", "missing"])
def test_empty_or_missing_raw_folder(tmp_path, case):
    data = tmp_path / "night"
    if case == "empty":
        data.mkdir()
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "flows.full_run", "--data", str(data), "--out",
                          str(out), "--runner", "threads"], capture_output=True, text=True,
                         env=_env(tmp_path), timeout=600)
    text = res.stdout + res.stderr
    assert res.returncode == 1, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    msg = f"no FITS files in {data}" if case == "empty" else "does not exist"
    assert msg in text, text[-2000:]
    if out.exists():
        _no_run_running(_db(out))


@pytest.fixture
def private_postgres(tmp_path):
    """A PostgreSQL server of this test's own (initdb in a temporary folder, a free port),
    which the test may stop and start again. Needs the server binaries and root (to run
    them as the ``postgres`` user)."""
    import glob
    import shutil
    import socket

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins or os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("no PostgreSQL server binaries, or not root")
    import tempfile

    bindir = Path(bins[-1])
    home = Path(tempfile.mkdtemp(prefix="tgp-pg-"))     # pytest's folders are root's alone
    home.chmod(0o755)
    data = home / "pgdata"
    data.mkdir()
    subprocess.run(["chown", "-R", "postgres", str(home)], check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def as_pg(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *cmd], capture_output=True,
                              text=True, timeout=120)

    res = as_pg(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    if res.returncode != 0:
        pytest.skip(f"initdb failed: {res.stderr[-500:]}")
    log = home / "pg.log"

    class Server:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

        def start(self) -> None:
            r = as_pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
                      f"-p {port} -k /tmp -c listen_addresses=127.0.0.1", "start")
            assert r.returncode == 0, r.stderr + log.read_text()[-2000:]

        def stop(self) -> None:
            as_pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")

    server = Server()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


def test_postgresql_stopped_mid_run(night, tmp_path, private_postgres):
    """The run database's server stops during registration: the run exits non-zero, saying
    that the environment (the database) failed it; once the server is back, the run is shown
    abandoned and the next run closes it and reuses what was finished."""
    out = tmp_path / "out"
    env = _env(tmp_path, TGP_DATABASE_URL=private_postgres.url)
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(_cmd(night, out), stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and not list(out.glob("*/stacks/*.fits")):
        assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        time.sleep(0.2)
    private_postgres.stop()
    rc = proc.wait(900)
    text = (tmp_path / "first.log").read_text()
    assert rc == 1, text[-3000:]
    assert "environment" in text or "OperationalError" in text, text[-3000:]
    private_postgres.start()
    db = _db(out, private_postgres.url)
    (first,) = db.list_runs()
    assert first.status == "running" and db.is_abandoned(first)
    _rerun_closes_and_reuses(night, out, env, db, first.id)
