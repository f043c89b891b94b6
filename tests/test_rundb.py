"""Tests of the run database (tgpcore.rundb) on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url

from tgpcore.io.checksum import sha256_file
from tgpcore.rundb import (
    DEFAULT_DB_NAME,
    Base,
    Frame,
    PlanEntry,
    QCMetric,
    Run,
    RunDB,
    make_engine,
    open_db,
    resolve_database_url,
    session_scope,
)
from tgpcore.rundb.engine import current_revision, downgrade, head_revision, upgrade

TABLES = {"alarms", "runs", "frames", "plan_masters", "plan_entries", "products", "stage_events",
          "qc_metrics", "cache_entries", "nights", "night_attempts", "product_lineage"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _count(db: RunDB, model: type[Base], **where: object) -> int:
    with session_scope(db.engine) as s:
        stmt = select(func.count()).select_from(model).filter_by(**where)
        return s.scalar(stmt)


def _new_run(db: RunDB, **kw: object) -> str:
    return db.start_run("/data/night1", "/out", "tgpsim", {"seed": 1}, "0.1.0", **kw)


# schema and migrations ----------------------------------------------------------------------

def test_upgrade_from_empty_creates_tables(unmigrated_db_url: str) -> None:
    assert not (_tables(unmigrated_db_url) & TABLES)
    upgrade(unmigrated_db_url)
    assert TABLES <= _tables(unmigrated_db_url)
    engine = open_db(unmigrated_db_url)  # idempotent: second upgrade is a no-op
    try:
        assert current_revision(engine) == head_revision() == "0006"
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    engine = open_db(db_url)
    try:
        _new_run(RunDB(engine))
        downgrade(engine, "base")
        assert not (_tables(db_url) & TABLES)
        assert current_revision(engine) is None
        upgrade(engine)
        assert TABLES <= _tables(db_url)
        assert RunDB(engine).list_runs() == []
    finally:
        engine.dispose()


def test_models_match_migrations(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = [d for d in compare_metadata(ctx, Base.metadata)
                    if not (d[0] == "remove_table" and d[1].name == "alembic_version")]
        assert diff == []
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("unmigrated_db_url", ["postgresql"], indirect=True)
def test_postgres_schema_has_its_own_version_table(db_url: str) -> None:
    url = make_url(db_url)
    schema = url.query["options"].split("=", 1)[1]
    engine = make_engine(db_url)
    try:
        assert inspect(engine).has_table("alembic_version", schema=schema)
    finally:
        engine.dispose()


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    engine = open_db(f"sqlite:///{tmp_path / 'x.sqlite'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 30000
    finally:
        engine.dispose()


# URL resolution -----------------------------------------------------------------------------

def test_resolve_database_url_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    url = make_url(resolve_database_url("rel/out"))
    assert url.get_backend_name() == "sqlite"
    assert Path(url.database) == tmp_path / "rel" / "out" / DEFAULT_DB_NAME
    assert Path(url.database).parent.is_dir()


def test_resolve_database_url_from_env(monkeypatch: pytest.MonkeyPatch, db_url: str,
                                       tmp_path: Path) -> None:
    monkeypatch.setenv("TGP_DATABASE_URL", db_url)
    assert resolve_database_url(tmp_path / "ignored") == db_url
    assert not (tmp_path / "ignored").exists()
    engine = open_db()  # no URL: uses the environment
    try:
        run_id = _new_run(RunDB(engine))
        assert engine.dialect.name == make_url(db_url).get_backend_name()
    finally:
        engine.dispose()
    engine = make_engine(db_url)
    try:
        assert RunDB(engine).get_run(run_id) is not None
    finally:
        engine.dispose()


# repository ---------------------------------------------------------------------------------

def test_start_finish_and_list_runs(rundb: RunDB) -> None:
    first = _new_run(rundb)
    second = _new_run(rundb, run_id="b" * 32)
    assert second == "b" * 32 and len(first) == 32
    run = rundb.get_run(first)
    assert run.status == "running" and run.finished_at is None
    assert run.created_at.tzinfo == dt.UTC and run.started_at.tzinfo == dt.UTC
    assert abs(run.created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)

    rundb.finish_run(first, "partial", "3 frames skipped")
    run = rundb.get_run(first)
    assert (run.status, run.message) == ("partial", "3 frames skipped")
    assert run.finished_at >= run.started_at
    with pytest.raises(ValueError, match="run status"):
        rundb.finish_run(first, "done")
    with pytest.raises(KeyError):
        rundb.finish_run("0" * 32, "failed")

    created = run.created_at
    assert _new_run(rundb, run_id=first) == first  # resuming keeps the row
    run = rundb.get_run(first)
    assert run.status == "running" and run.finished_at is None and run.created_at == created
    assert _count(rundb, Run) == 2
    assert [r.id for r in rundb.list_runs()] == [second, first]
    assert len(rundb.list_runs(limit=1)) == 1


def test_upsert_frames_is_idempotent(rundb: RunDB) -> None:
    run_id = _new_run(rundb)
    records = [
        {"path": f"/raw/sci_{i}.fits", "kind": "science", "filter": "V", "exptime_s": 60.0,
         "cluster": "NGC 2099", "binning": "1x1", "naxis1": 1024, "naxis2": 1024,
         "date_obs": "2020-01-01T20:00:00", "airmass": 1.2, "sha256": "ab" * 32,
         "size_bytes": 2_100_000, "header": {"FILTER": "V", "GAIN": np.float32(1.5)}}
        for i in range(3)
    ] + [{"path": "/raw/odd.fits", "kind": "unknown", "status": "rejected",
          "reason": "no IMAGETYP"}]
    ids = rundb.upsert_frames(run_id, records)
    assert set(ids) == {r["path"] for r in records}
    assert rundb.upsert_frames(run_id, records) == ids
    assert _count(rundb, Frame) == 4

    assert rundb.upsert_frames(run_id, [{"path": "/raw/odd.fits", "kind": "bias",
                                         "status": "accepted", "reason": None}]) == {
        "/raw/odd.fits": ids["/raw/odd.fits"]}
    odd = {f.path: f for f in rundb.frames(run_id)}["/raw/odd.fits"]
    assert (odd.kind, odd.status, odd.reason) == ("bias", "accepted", None)
    sci = rundb.frames(run_id, kind="science")
    assert len(sci) == 3 and sci[0].header == {"FILTER": "V", "GAIN": 1.5}
    assert sci[0].naxis1 == 1024 and sci[0].exptime_s == 60.0

    other = _new_run(rundb)  # the same paths in another run are other rows
    assert set(rundb.upsert_frames(other, records).values()).isdisjoint(ids.values())
    assert _count(rundb, Frame) == 8
    assert rundb.upsert_frames(run_id, []) == {}
    with pytest.raises(ValueError, match="unknown frame field"):
        rundb.upsert_frames(run_id, [{"path": "/x.fits", "colour": "red"}])
    with pytest.raises(ValueError, match="frame kind"):
        rundb.upsert_frames(run_id, [{"path": "/x.fits", "kind": "arc"}])


def test_replace_plan(rundb: RunDB) -> None:
    run_id = _new_run(rundb)
    ids = rundb.upsert_frames(run_id, [{"path": "/raw/b1.fits", "kind": "bias"},
                                       {"path": "/raw/s1.fits", "kind": "science"},
                                       {"path": "/raw/s2.fits", "kind": "science"}])
    masters = [{"key": "bias_1x1_1024x1024", "kind": "bias", "binning": "1x1",
                "shape": "1024x1024", "members": ["/raw/b1.fits"], "rule": "same binning",
                "depends": {},
                "warnings": ["only 1 frame"]}]
    entries = [{"path": "/raw/s1.fits", "bias_key": "bias_1x1_1024x1024", "dark_scale": 0.5},
               {"path": "/raw/s2.fits", "status": "refused", "reason": "no flat in R",
                "warnings": ["no flat"]}]
    rundb.replace_plan(run_id, masters, entries)
    rundb.replace_plan(run_id, masters, entries)
    got_masters, got_entries = rundb.plan(run_id)
    assert [m.key for m in got_masters] == ["bias_1x1_1024x1024"]
    assert got_masters[0].members == ["/raw/b1.fits"]
    assert got_masters[0].warnings == ["only 1 frame"] and got_masters[0].depends == {}
    assert [(p, e.frame_id, e.status) for p, e in got_entries] == [
        ("/raw/s1.fits", ids["/raw/s1.fits"], "ok"), ("/raw/s2.fits", ids["/raw/s2.fits"],
                                                      "refused")]
    assert got_entries[0][1].dark_scale == 0.5 and got_entries[0][1].warnings == []

    rundb.replace_plan(run_id, [], [{"path": "/raw/s1.fits", "status": "refused",
                                     "reason": "no bias"}])
    got_masters, got_entries = rundb.plan(run_id)
    assert got_masters == [] and len(got_entries) == 1
    assert _count(rundb, PlanEntry) == 1

    with pytest.raises(ValueError, match="no such frame"):
        rundb.replace_plan(run_id, [], [{"path": "/raw/missing.fits"}])
    with pytest.raises(ValueError, match="not among the plan's masters"):
        rundb.replace_plan(run_id, [], [{"path": "/raw/s1.fits", "flat_key": "flat_V"}])
    assert len(rundb.plan(run_id)[1]) == 1  # failed replacements leave the plan alone


def test_stage_events(rundb: RunDB) -> None:
    run_id = _new_run(rundb)
    ev = rundb.stage_started(run_id, "calibrate")
    rundb.stage_finished(ev, "succeeded", {"calibrated": 37, "skipped": 3}, "ok")
    first = rundb.stage_not_built(run_id, "photometry", "not implemented yet")
    assert rundb.stage_not_built(run_id, "photometry", "still not") == first
    events = rundb.stage_events(run_id)
    assert [(e.stage, e.status) for e in events] == [("calibrate", "succeeded"),
                                                     ("photometry", "not_built")]
    assert events[0].counters == {"calibrated": 37, "skipped": 3}
    assert events[0].finished_at >= events[0].started_at
    assert events[1].message == "still not"
    with pytest.raises(ValueError, match="stage status"):
        rundb.stage_finished(ev, "great")
    with pytest.raises(KeyError):
        rundb.stage_finished(10**6, "failed")


def test_product_lookup_across_runs(rundb: RunDB, tmp_path: Path) -> None:
    path = tmp_path / "run1" / "master_bias.fits"
    path.parent.mkdir()
    path.write_bytes(b"x" * 2880)
    checksum = sha256_file(path)
    run1 = _new_run(rundb)
    pid = rundb.record_product(run1, "master_bias", "k1", path, checksum, {"a.fits": "00" * 32},
                               {"method": "median"}, "0.1.0")
    assert rundb.record_product(run1, "master_bias", "k1", path, checksum, {}, {}, "0.1.0") == pid
    assert len(rundb.products(run1)) == 1

    run2 = _new_run(rundb)
    found = rundb.find_product("k1")
    assert found is not None and (found.id, found.run_id) == (pid, run1)
    assert found.path == str(path) and found.size_bytes == 2880 and found.params == {}
    assert rundb.verify_product(found)
    assert rundb.find_product("other") is None

    rundb.record_product(run2, "master_bias", "k2", None, None, None, None, "0.1.0",
                         status="failed")
    assert rundb.find_product("k2") is None  # failed products are never reused

    path2 = tmp_path / "run2" / "master_bias.fits"
    path2.parent.mkdir()
    path2.write_bytes(b"y" * 2880)
    pid2 = rundb.record_product(run2, "master_bias", "k1", path2, sha256_file(path2), {}, {},
                                "0.1.0")
    assert rundb.find_product("k1").id == pid2  # the latest one
    path2.unlink()
    assert rundb.find_product("k1").id == pid  # deleted file: fall back to the older product

    path.write_bytes(b"z" * 2880)  # same size, other content: found, but does not verify
    assert not rundb.verify_product(rundb.find_product("k1"))
    path.write_bytes(b"z" * 10)  # other size: not found
    assert rundb.find_product("k1") is None
    path.unlink()
    assert rundb.find_product("k1") is None
    with pytest.raises(ValueError, match="product status"):
        rundb.record_product(run2, "x", "k3", None, None, None, None, None, status="bad")


def test_add_qc_replaces_values(rundb: RunDB) -> None:
    run_id = _new_run(rundb)
    fid = rundb.upsert_frames(run_id, [{"path": "/raw/s1.fits"}])["/raw/s1.fits"]
    pid = rundb.record_product(run_id, "stack", "s", None, None, None, None, None)
    rundb.add_qc(run_id, {"zp_V": 21.3, "n_stars": 120})
    rundb.add_qc(run_id, {"fwhm": 2.1}, frame_id=fid, units={"fwhm": "arcsec"})
    rundb.add_qc(run_id, {"fwhm": 1.9}, product_id=pid)
    rundb.add_qc(run_id, {"zp_V": 21.4, "bad": float("nan")})
    rundb.add_qc(run_id, {"fwhm": np.float64(2.2)}, frame_id=fid, units={"fwhm": "arcsec"})
    rundb.add_qc(run_id, {})
    assert rundb.qc(run_id) == {"zp_V": 21.4, "n_stars": 120.0, "bad": None}
    assert rundb.qc(run_id, frame_id=fid) == {"fwhm": 2.2}
    assert rundb.qc(run_id, product_id=pid) == {"fwhm": 1.9}
    assert _count(rundb, QCMetric) == 5
    assert _count(rundb, QCMetric, key="fwhm", unit="arcsec") == 1


def test_cache_and_expiry(rundb: RunDB) -> None:
    payload = bytes(range(256)) * 10
    rundb.cache_put("k" * 64, "gaia", {"ra": 10.0, "dec": 20.0, "radius_deg": 0.2}, payload,
                    "application/x-votable+xml")
    assert rundb.cache_get("k" * 64) == payload
    rundb.cache_put("k" * 64, "gaia", None, b"newer", ttl_s=3600)
    assert rundb.cache_get("k" * 64) == b"newer"
    rundb.cache_put("e" * 64, "vizier", {}, b"old", ttl_s=-1)
    assert rundb.cache_get("e" * 64) is None
    assert rundb.cache_get("missing") is None
    assert rundb.cache_purge() == 1
    assert rundb.cache_get("k" * 64) == b"newer"


def test_nights(rundb: RunDB) -> None:
    run_id = _new_run(rundb)
    assert rundb.night_status("/raw/2020-01-01") is None
    rundb.mark_night(Path("/raw/2020-01-01"), "running", run_id)
    rundb.mark_night("/raw/2020-01-01", "done")
    assert rundb.night_status("/raw/2020-01-01") == "done"
    with session_scope(rundb.engine) as s:
        night = s.execute(text("SELECT run_id, processed_at FROM nights")).one()
    assert night.run_id == run_id and night.processed_at is not None
    with pytest.raises(ValueError, match="night status"):
        rundb.mark_night("/raw/x", "skipped")


def test_run_summary(rundb: RunDB) -> None:
    run_id = _new_run(rundb)
    rundb.upsert_frames(run_id, [{"path": "/b.fits", "kind": "bias"},
                                 {"path": "/s1.fits", "kind": "science"},
                                 {"path": "/s2.fits", "kind": "science", "status": "rejected"}])
    rundb.replace_plan(run_id, [{"key": "bias", "kind": "bias", "members": ["/b.fits"]},
                                {"key": "flat_V", "kind": "flat", "depends": {"bias": "bias"}}],
                       [{"path": "/s1.fits", "bias_key": "bias"}])
    rundb.stage_finished(rundb.stage_started(run_id, "inventory"), "succeeded", {"frames": 3})
    rundb.record_product(run_id, "master_bias", "kb", None, None, None, None, None)
    rundb.add_qc(run_id, {"n": 1})
    summary = rundb.run_summary(run_id)
    assert summary["run"]["id"] == run_id and summary["run"]["params"] == {"seed": 1}
    assert summary["frames"] == {
        "total": 3, "by_kind": {"bias": 1, "science": 2},
        "by_status": {"accepted": 2, "rejected": 1},
        "by_kind_status": {"bias/accepted": 1, "science/accepted": 1, "science/rejected": 1}}
    assert summary["plan"] == {"masters": 2, "entries": {"ok": 1}}
    assert summary["products"] == {"ok": 1} and summary["qc"] == 1
    assert [(e["stage"], e["status"], e["counters"]) for e in summary["stages"]] == [
        ("inventory", "succeeded", {"frames": 3})]
    with pytest.raises(KeyError):
        rundb.run_summary("0" * 32)


def test_json_round_trip(rundb: RunDB) -> None:
    params = {"filters": ["U", "B", "V"], "nested": {"sigma": 3.0, "iters": 5, "on": True,
                                                     "none": None},
              "unicode": "Ångström – ☆", "big": 2**40, "array": np.arange(3),
              "path": Path("/data/x"), "nan": float("nan")}
    run_id = rundb.start_run(Path("/data"), Path("/out"), None, params, None)
    run = rundb.get_run(run_id)
    assert run.params == {"filters": ["U", "B", "V"],
                          "nested": {"sigma": 3.0, "iters": 5, "on": True, "none": None},
                          "unicode": "Ångström – ☆", "big": 2**40, "array": [0, 1, 2],
                          "path": "/data/x", "nan": None}
    assert run.data_dir == "/data" and run.profile is None
    run_id2 = rundb.start_run("/d", "/o", None, None, None)
    with session_scope(rundb.engine) as s:  # None is SQL NULL, not JSON null
        assert s.scalar(select(func.count()).select_from(Run)
                        .where(Run.params.is_(None))) == 1
        assert s.get(Run, run_id2).params is None


def test_session_scope_rolls_back(rundb: RunDB) -> None:
    with pytest.raises(RuntimeError), session_scope(rundb.engine) as s:
        s.add(Run(id="c" * 32, status="running"))
        s.flush()
        raise RuntimeError("boom")
    assert rundb.get_run("c" * 32) is None


# concurrency --------------------------------------------------------------------------------

def test_concurrent_writers(db_url: str) -> None:
    """Two engines (as two workers would have) write runs, frames and QC at the same time."""
    shared = RunDB(open_db(db_url)).start_run("/d", "/o", None, None, None)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)
    n_frames = 40

    def work(worker: int) -> None:
        engine = open_db(db_url)
        try:
            db = RunDB(engine)
            barrier.wait(timeout=30)
            for _ in range(3):
                run_id = db.start_run("/d", "/o", None, {"worker": worker}, None)
                db.upsert_frames(run_id, [{"path": f"/raw/{i}.fits"} for i in range(n_frames)])
                db.upsert_frames(shared, [{"path": f"/raw/{i}.fits", "filter": str(worker)}
                                          for i in range(n_frames)])
                db.add_qc(shared, {"a": worker, "b": worker})
                db.finish_run(run_id, "succeeded")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    engine = make_engine(db_url)
    try:
        db = RunDB(engine)
        assert len(db.list_runs(limit=100)) == 7
        assert _count(db, Frame) == 7 * n_frames
        assert _count(db, Frame, run_id=shared) == n_frames
        assert _count(db, QCMetric) == 2 and set(db.qc(shared)) == {"a", "b"}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_concurrent_open_db_in_two_processes(unmigrated_db_url: str) -> None:
    code = ("import sys; from tgpcore.rundb import RunDB, open_db; "
            "RunDB(open_db(sys.argv[1])).start_run('/d', '/o', None, None, None)")
    procs = [subprocess.Popen([sys.executable, "-c", code, unmigrated_db_url],
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
    assert [rc for rc, _ in results] == [0, 0], results
    engine = make_engine(unmigrated_db_url)
    try:
        assert current_revision(engine) == head_revision()
        assert len(RunDB(engine).list_runs()) == 2
    finally:
        engine.dispose()


def test_alarms_are_recorded_with_their_reason(db_url: str) -> None:
    from tgpcore.qc import Alarm

    engine = open_db(db_url)
    try:
        db = RunDB(engine)
        run_id = _new_run(db)
        a = Alarm("non_photometric", "register", "NGC2420/p0 V", 0.23, 0.05,
                  "the same stars are 0.23 mag fainter")
        assert db.add_alarms(run_id, [a, {**a.to_dict(), "level": "error", "value": float("nan")}]) == 2
        got = db.alarms(run_id)
        assert [g["level"] for g in got] == ["warning", "error"]
        assert got[0]["value"] == 0.23 and got[1]["value"] is None
        assert "clouds" in got[0]["reason"] and got[0]["message"].startswith("the same stars")
        with pytest.raises(ValueError):
            db.add_alarms(run_id, [{**a.to_dict(), "level": "fatal"}])
    finally:
        engine.dispose()
