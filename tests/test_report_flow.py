"""The report stage inside a run (Prefect), and rebuilding a report from a run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from _reportrun import make_fake_run
from prefect import flow
from prefect.testing.utilities import prefect_test_harness

from flows.cli import main as tgp_main
from flows.guard import check_inside
from flows.report import ReportParams, report_flow, run_report_stage
from flows.session import RunSession, run_database


@pytest.fixture()
def sqlite_env(monkeypatch):
    """The default SQLite database under the output root (not a TGP_DATABASE_URL of the shell)."""
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)


def test_rebuild_from_run_folder_cli(tmp_path, capsys, sqlite_env):
    db, url = run_database(tmp_path / "out")
    run = make_fake_run(db, tmp_path / "out")
    (run.run_dir / "report.html").write_text("stale")
    assert tgp_main(["report", "--run-dir", str(run.run_dir)]) == 0
    out = capsys.readouterr().out
    html = (run.run_dir / "report.html").read_text()
    assert f"report: {run.run_dir / 'report.html'}" in out and "10 images" in out
    assert "Not built yet: photometry." in out
    assert html.count("<img ") == 10 and "alignment: too few stars matched" in html
    (product,) = db.products(run.run_id, kind="report")  # recorded with its checksum
    assert db.verify_product(product)
    # a folder with no database beside it: files only, said plainly
    lone = tmp_path / "elsewhere" / run.run_id
    lone.mkdir(parents=True)
    (lone / "plots").mkdir()
    (lone / "plots" / "a.png").write_bytes((run.run_dir / "plots" / "extra.png").read_bytes())
    assert tgp_main(["report", "--run-dir", str(lone), "--output", str(tmp_path / "r.html")]) == 0
    assert "no run database found" in capsys.readouterr().out
    assert (tmp_path / "r.html").read_text().count("<img ") == 1
    assert tgp_main(["report", "--run-dir", str(tmp_path / "missing")]) == 2


def test_report_paths_stay_inside_the_output_root(tmp_path):
    (tmp_path / "out" / "r1").mkdir(parents=True)
    (tmp_path / "out" / "link").symlink_to(tmp_path)
    assert check_inside(tmp_path / "out" / "r1", tmp_path / "out") == tmp_path / "out" / "r1"
    for bad in (tmp_path / "out" / ".." / "x", tmp_path / "out" / "link" / "x", Path("/etc")):
        with pytest.raises(ValueError, match="outside the output root"):
            check_inside(bad, tmp_path / "out")


@pytest.mark.slow
def test_report_stage_in_a_run_records_event_product_and_artifact(tmp_path, sqlite_env,
                                                                  monkeypatch):
    db, url = run_database(tmp_path / "out")
    run = make_fake_run(db, tmp_path / "out")
    session = RunSession(run_id=run.run_id, db=db, db_url=url, out_root=tmp_path / "out")

    @flow
    def one_stage():
        return run_report_stage(session, {"not_built": ["photometry"],
                                          "failed": {"membership": "catalogs failed"},
                                          "timings": {"membership": 0.0}})

    with prefect_test_harness(server_startup_timeout=180):
        out = one_stage()
        first_size = Path(out["path"]).stat().st_size
        first_html = Path(out["path"]).read_text()
        with monkeypatch.context() as m:
            m.setenv("TGP_OUT_ROOT", str(tmp_path / "out"))
            with pytest.raises(ValueError, match="outside the output root"):
                report_flow(ReportParams(run_dir=str(tmp_path)))
            rebuilt = report_flow(ReportParams(run_dir=str(run.run_dir)))
    assert out["status"] == "ok" and Path(out["path"]) == run.run_dir / "report.html"
    # built as the run's last stage, the report shows the status the run closes with (stages
    # failed, so 'partial'), not the 'running' the database still holds at that moment
    assert db.get_run(run.run_id).status == "running"
    assert f"run {run.run_id} (partial)" in first_html and "(running)" not in first_html
    assert out["n_figures"] == 10 and out["size_bytes"] == first_size
    # membership has no event of its own here: the run's outcome says it failed
    assert "Failed: mosaic (ValueError: no overlap between p0 and p1); membership (catalogs "\
           "failed)." in out["alerts"]
    events = [e for e in db.stage_events(run.run_id) if e.stage == "report"]
    assert [e.status for e in events] == ["succeeded"]
    assert events[0].counters["images"] == 10
    (product,) = db.products(run.run_id, kind="report")
    assert product.path == out["path"] and db.verify_product(product)
    assert db.qc(run.run_id, product_id=product.id)["report_images"] == 10
    # rebuilt from the folder and the database: now the report stage itself succeeded
    assert rebuilt["path"] == out["path"] and rebuilt["n_figures"] == 10 and rebuilt["recorded"]
    assert not any("report" in a for a in rebuilt["alerts"])
