"""Flows under Prefect's test harness: inventory, plan, full run, CLI."""

from pathlib import Path

import numpy as np
import pytest

from flows.cli import main as tgp_main
from flows.full_run import FullRunParams, full_run_flow, run
from flows.full_run import main as full_run_main
from flows.inventory import InventoryParams, inventory_flow
from flows.runners import RunnerSettings, make_task_runner
from flows.session import run_database
from flows.stages import stage_range

from _fitsfactory import small_night

pytestmark = pytest.mark.usefixtures("prefect_harness")

CAHA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ngc2420_caha"
THREADS = RunnerSettings(kind="threads", n_workers=2)


@pytest.fixture()
def sqlite_env(monkeypatch):
    """Flows use the default SQLite database under --out (not a TGP_DATABASE_URL of the shell)."""
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)


def test_inventory_flow_records_frames(tmp_path, sqlite_env):
    night = small_night(tmp_path / "night")
    params = InventoryParams(data=str(night), out=str(tmp_path / "out"), runner=THREADS)
    result = inventory_flow.with_options(task_runner=make_task_runner(THREADS))(params)
    assert result["counts"]["science"] == 6
    db, url = run_database(tmp_path / "out")
    assert url.startswith("sqlite:///") and (tmp_path / "out" / "tgp-runs.sqlite").exists()
    summary = db.run_summary(result["run_id"])
    assert summary["run"]["status"] == "succeeded"
    frames = db.frames(result["run_id"])
    assert len(frames) == 26 and {f.kind for f in frames} >= {"bias", "dark", "flat", "science"}


def test_full_run_records_run_plan_and_unbuilt_stages(tmp_path, sqlite_env):
    """Every stage runs or is skipped with what it needs; with no Gaia catalogue reachable
    (offline, no cache) the catalogue stage fails and membership is skipped, and the night goes
    on. The night's V flat has no signal and B has no flat: the calibration produced none of
    its 7 frames, so it failed, the image stages are skipped for want of it, and the run failed
    (it was reported as succeeded before the stages' statuses were computed)."""
    night = small_night(tmp_path / "night", darks=False, flats=("V",))
    params = FullRunParams(data=str(night), out=str(tmp_path / "out"), runner=THREADS)
    result = full_run_flow.with_options(task_runner=make_task_runner(THREADS))(params)
    assert result["status"] == "failed"
    assert "offline" in result["failed"]["catalogs"]
    assert result["stages"]["calibrate"].startswith("failed")
    assert result["stages"]["register"] == "skipped (needs calibrate)"
    assert result["failed"]["membership"] == "skipped (needs catalogs)"
    assert result["stages"]["membership"] == "skipped (needs catalogs)"
    assert result["stages"]["isochrone_fit"] == "skipped (needs membership)"
    db, _ = run_database(tmp_path / "out")
    events = {e.stage: e.status for e in db.stage_events(result["run_id"])}
    assert events["inventory"] == events["plan"] == "succeeded"
    assert events["calibrate"] == "failed"  # 0 of 7 frames
    counters = {e.stage: e.counters for e in db.stage_events(result["run_id"])}
    assert counters["calibrate"]["done"] == 0 and counters["calibrate"]["failed"] == 7
    assert events["catalogs"] == "failed"
    assert events["membership"] == events["isochrone_fit"] == "skipped"
    masters, entries = db.plan(result["run_id"])
    assert {m.kind for m in masters} == {"bias", "flat"}
    status = {Path(path).name: e.status for path, e in entries}
    assert len(status) == 7
    refused = [e for _, e in entries if e.status == "refused"]
    assert len(refused) == 3 and all("no flat matching B" in e.reason for e in refused)
    run_row = db.get_run(result["run_id"])
    assert run_row.status == "failed" and "catalogs failed" in run_row.message
    assert Path(result["report"]).name == "report.html" and Path(result["report"]).is_file()
    assert Path(result["run_dir"]).is_dir()


def _plan_only(data: Path, out: Path, capsys) -> str:
    """What ``full_run --plan-only`` (threads) prints for ``data``; it must exit with 0."""
    rc = full_run_main(["--data", str(data), "--out", str(out), "--plan-only",
                        "--runner", "threads"])
    printed = capsys.readouterr().out
    assert rc == 0
    return printed


def test_plan_only_cli_prints_plan(tmp_path, capsys, sqlite_env):
    night = small_night(tmp_path / "night", darks=False)
    out = _plan_only(night, tmp_path / "out", capsys)
    assert "7/7 frames can be calibrated" in out
    assert "no dark frames in this night" in out
    assert "calibrate" not in out.split("run ")[-1]  # plan-only stops after the plan
    assert f"products: {tmp_path / 'out'}" in out
    # every file is shown, and the plan is recorded without Prefect (no flow run)
    assert "Files (" in out and "Masters (" in out
    from flows.session import run_database

    db, _ = run_database(tmp_path / "out")
    (r,) = db.list_runs()
    assert r.status == "succeeded"
    assert {e.stage for e in db.stage_events(r.id)} == {"inventory", "plan"}
    masters, entries = db.plan(r.id)
    assert masters and len(entries) == 7
    assert db.frames(r.id)


def test_tgp_cli_runs_and_db(tmp_path, capsys, sqlite_env):
    night = small_night(tmp_path / "night")
    assert tgp_main(["plan", "--data", str(night), "--record", "--out", str(tmp_path / "out")]) == 0
    assert tgp_main(["db", "upgrade", "--out", str(tmp_path / "out")]) == 0
    assert tgp_main(["runs", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "succeeded" in out and "latest schema" in out
    assert tgp_main(["bogus"]) == 2


def test_bad_stage_names_are_clear():
    with pytest.raises(ValueError, match="unknown stage 'calib'"):
        stage_range("calib", None)
    with pytest.raises(ValueError, match="comes before"):
        stage_range("plan", "inventory")
    assert stage_range("plan", "calibrate") == ["plan", "calibrate"]


def test_missing_data_dir_fails_the_run_clearly(tmp_path, sqlite_env):
    params = FullRunParams(data=str(tmp_path / "nope"), out=str(tmp_path / "out"),
                           runner=THREADS)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        full_run_flow.with_options(task_runner=make_task_runner(THREADS))(params)
    db, _ = run_database(tmp_path / "out")
    (last,) = db.list_runs(limit=1)
    assert last.status == "failed" and "does not exist" in last.message


@pytest.mark.slow
def test_full_run_on_local_dask_cluster(tmp_path, sqlite_env):
    """The default runner: one local Dask cluster (2 worker processes) for the whole run."""
    night = small_night(tmp_path / "night")
    params = FullRunParams(data=str(night), out=str(tmp_path / "out"), plan_only=True,
                           runner=RunnerSettings(kind="dask", n_workers=2, dask_address=None))
    result = run(params)
    assert result["status"] == "succeeded"
    assert len(result["plan"]["entries"]) == 7


@pytest.mark.realdata
def test_plan_only_on_real_ngc2420(tmp_path, capsys, sqlite_env):
    if not CAHA.is_dir():
        pytest.skip(f"real data not found at {CAHA}")
    out = _plan_only(CAHA, tmp_path / "out", capsys)
    assert "11/11 frames can be calibrated" in out
    assert "no dark frames in this night" in out
    assert "Files (15):" in out                       # the biases and flats too
    assert "from: uamA_0001.fits, uamA_0002.fits" in out    # the frames of the master bias
    # each science frame twice: as a file, and as a frame to calibrate
    assert out.count("NGC2420/p0/B") == 12 and out.count("NGC2420/p0/V") == 10


@pytest.fixture(scope="module")
def tiny_night(tmp_path_factory):
    from tgpcore.simulate import simulate_night

    return simulate_night(tmp_path_factory.mktemp("tinyflow") / "night", preset="tiny", seed=4)


def test_calibrate_stage_records_products_qc_and_skips_bad_frames(tmp_path, tiny_night,
                                                                  sqlite_env):
    """The calibrate stage on a simulated night with one NaN frame: the night goes on, the bad
    frame is recorded as rejected with its reason, QC and products are in the database, and a
    second run reuses every product."""
    import shutil

    import numpy as np
    from astropy.io import fits

    raw = tmp_path / "raw"
    shutil.copytree(tiny_night.raw_dir, raw)
    sci = sorted(raw.glob("sim_*.fits"))[-1]
    with fits.open(sci) as hdul:
        hdr = hdul[0].header.copy()
        shape = hdul[0].data.shape
    for k in ("BZERO", "BSCALE", "BLANK"):
        hdr.remove(k, ignore_missing=True)
    fits.PrimaryHDU(np.full(shape, np.nan, np.float32), header=hdr).writeto(raw / "zz_nan.fits")
    params = FullRunParams(data=str(raw), out=str(tmp_path / "out"), to_stage="calibrate",
                           runner=THREADS)
    result = full_run_flow.with_options(task_runner=make_task_runner(THREADS))(params)
    cal = result["calibration"]
    n_targets = sum(1 for r in tiny_night.frames() if r["kind"] in ("science", "standard"))
    assert len(cal["calibrated"]) == n_targets
    (nan_path,) = [p for p in cal["rejected"]]
    assert nan_path.endswith("zz_nan.fits") and "NaN" in cal["rejected"][nan_path]
    db, _ = run_database(tmp_path / "out")
    frames = {Path(f.path).name: f for f in db.frames(result["run_id"])}
    assert frames["zz_nan.fits"].status == "rejected"
    assert "calibration" in frames["zz_nan.fits"].reason
    products = db.products(result["run_id"])
    assert sum(p.kind == "calibrated" for p in products) == n_targets
    assert {p.kind for p in products} >= {"master_bias", "master_dark", "master_flat"}
    raw_path, cal_path = next(iter(cal["calibrated"].items()))
    (product,) = [p for p in products if p.path == cal_path]
    qc = db.qc(result["run_id"], frame_id=frames[Path(raw_path).name].id, product_id=product.id)
    assert {"sky_e", "noise_e", "cosmic_rays", "saturated_fraction"} <= set(qc)
    events = {e.stage: e for e in db.stage_events(result["run_id"])}
    assert events["calibrate"].status == "partial"  # one frame lost
    assert events["calibrate"].counters["failed"] == 1
    assert result["status"] == "partial"
    # a second run with the same inputs reuses every master and calibrated frame
    again = full_run_flow.with_options(task_runner=make_task_runner(THREADS))(params)
    n_masters = len(cal["masters"])
    assert again["calibration"]["reused"] == n_targets + n_masters
    assert again["calibration"]["calibrated"] == cal["calibrated"]


def test_tgp_console_script_points_at_the_cli():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "tgp"]
    assert ep.load() is tgp_main


def _night_with_lit_flats(root: Path, nan_flat: str | None = None) -> Path:
    """``small_night`` without darks whose B and V flats (img_0004-0013) have signal above the
    bias; ``nan_flat`` is made all NaN."""
    from astropy.io import fits

    night = small_night(root, darks=False)
    for i in range(4, 14):
        name = f"img_{i:04d}.fits"
        with fits.open(night / name, mode="update") as hdul:
            assert hdul[0].header["FILTER"] == ("B" if i < 9 else "V")
            hdul[0].data = np.full(hdul[0].data.shape, np.nan if name == nan_flat else 20000.0,
                                   np.float32)
    return night


def test_a_failed_flat_rejects_its_filter_and_the_night_goes_on(tmp_path, sqlite_env):
    """Frames start as soon as their own masters exist; a master that fails (a B flat full of
    NaN) fails exactly the frames that need it, with the reason, and the V frames are
    calibrated. The run lost 3 of 7 frames: it is partial, not succeeded."""
    from flows.calibrate import CalibrateParams, calibrate_flow

    night = _night_with_lit_flats(tmp_path / "night", nan_flat="img_0004.fits")
    params = CalibrateParams(data=str(night), out=str(tmp_path / "out"), runner=THREADS)
    result = calibrate_flow.with_options(task_runner=make_task_runner(THREADS))(params)
    cal = result["calibration"]
    # the frames are fine: they are failed (their master failed), not rejected
    assert not cal["rejected"], cal["rejected"]
    lost = {Path(p).name: r for p, r in cal["failed"].items()}
    assert len(lost) == 3, lost
    assert all("flat_B" in r and "failed" in r and "img_0004.fits" in r
               for r in lost.values()), lost
    assert len(cal["calibrated"]) == 4  # V: three cluster frames and the standard field
    db, _ = run_database(tmp_path / "out")
    assert db.get_run(result["run_id"]).status == result["status"] == "partial"
    failed = [p for p in db.products(result["run_id"]) if p.status == "failed"]
    assert [p.kind for p in failed] == ["master_flat"]


@pytest.mark.slow
def test_calibrate_flow_on_its_own_local_dask_cluster(tmp_path, sqlite_env, capsys):
    """``python -m flows.calibrate`` with the default runner: the flow makes its own local
    cluster (``flows.runners.local_cluster``) and waits on its Dask futures as masters finish."""
    from flows.calibrate import main as calibrate_main

    night = _night_with_lit_flats(tmp_path / "night")
    rc = calibrate_main(["--data", str(night), "--out", str(tmp_path / "out"),
                         "--runner", "dask", "--workers", "1", "--no-cosmic-rays"])
    out = capsys.readouterr().out
    assert rc == 0 and "7 frames calibrated, 0 skipped, 3 masters" in out, out
