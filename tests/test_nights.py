"""Night folders of an inbox and claiming each exactly once (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

import pytest
from sqlalchemy import update

from tgpcore.rundb import Night, RunDB, open_db, session_scope
from tgpcore.rundb.nights import claim_night, find_nights, finish_night, night_attempts


def _night(root, name, raw=True):
    folder = root / name / ("raw" if raw else "")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "f1.fits").write_bytes(b"SIMPLE")
    return root / name


def test_find_nights(tmp_path):
    inbox = tmp_path / "inbox"
    a = _night(inbox, "2026-01-02")
    b = _night(inbox, "2026-01-01", raw=False)
    (inbox / "empty").mkdir()
    (inbox / ".hidden").mkdir()
    (inbox / ".hidden" / "x.fits").write_bytes(b"")
    (inbox / "notes.fits").write_bytes(b"")  # a file, not a night folder
    nights = find_nights(inbox)
    assert [n.path.name for n in nights] == ["2026-01-01", "2026-01-02"]
    assert nights[0].data == b.resolve() and nights[1].data == (a / "raw").resolve()
    # a night still being copied (recently modified) waits
    old = time.time() - 3600
    for root, dirs, files in os.walk(b):
        for n in (*dirs, *files):
            os.utime(os.path.join(root, n), (old, old))
    os.utime(b, (old, old))
    assert [n.path.name for n in find_nights(inbox, min_age_s=600)] == ["2026-01-01"]
    with pytest.raises(FileNotFoundError, match="inbox"):
        find_nights(tmp_path / "nope")


def test_claims_once_retries_failed_and_reclaims_stale(rundb: RunDB):
    path = "/inbox/2026-01-01"
    first = claim_night(rundb, path, worker="w1")
    assert first is not None and first.attempt == 1
    assert claim_night(rundb, path, worker="w2") is None  # running elsewhere
    finish_night(rundb, first, "failed", message="boom")
    second = claim_night(rundb, path, worker="w2", max_attempts=2)
    assert second is not None and second.attempt == 2
    finish_night(rundb, second, "failed", message="boom again")
    assert claim_night(rundb, path, max_attempts=2) is None  # gave up
    assert claim_night(rundb, path, retry_failed=False, max_attempts=9) is None
    third = claim_night(rundb, path, max_attempts=3)
    run_id = rundb.start_run(path, "/out", None, {}, "0.1.0")
    finish_night(rundb, third, "done", run_id=run_id)
    assert rundb.night_status(path) == "done"
    assert claim_night(rundb, path, max_attempts=99) is None  # done is done
    attempts = night_attempts(rundb, path)
    assert [(a.worker, a.status, a.message) for a in attempts] == [
        ("w1", "failed", "boom"), ("w2", "failed", "boom again"), (None, "done", None)]
    assert attempts[-1].run_id == run_id

    # a claim left by a killed worker is taken over once it is stale
    other = "/inbox/2026-01-02"
    assert claim_night(rundb, other, worker="killed") is not None
    assert claim_night(rundb, other, stale_after_s=3600) is None
    with session_scope(rundb.engine) as s:
        s.execute(update(Night).where(Night.path == other).values(
            processed_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)))
    again = claim_night(rundb, other, worker="new", stale_after_s=3600)
    assert again is not None and again.attempt == 2
    assert [a.status for a in night_attempts(rundb, other)] == ["failed", "running"]
    with pytest.raises(ValueError, match="'done' or 'failed'"):
        finish_night(rundb, again, "running")


def test_concurrent_claims_give_each_night_to_one_worker(db_url: str):
    """Eight threads, each with its own engine, race for the same five nights."""
    paths = [f"/inbox/n{i}" for i in range(5)]
    won: list[tuple[str, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(name: str) -> None:
        engine = open_db(db_url)
        db = RunDB(engine)
        try:
            barrier.wait()
            for p in paths:
                if claim_night(db, p, worker=name) is not None:
                    with lock:
                        won.append((p, name))
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(p for p, _ in won) == paths
