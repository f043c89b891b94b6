"""The direct command lines (``tgp plan``, ``tgp members``, ``tgp fit``): they run the library
without Prefect, write only their products, and say what is wrong with bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import gaussian_kde

from tgpcore.plots.membership import binned_kde

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _run(args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_binned_kde_matches_scipy_gaussian_kde():
    """The figure's binned KDE against scipy's (the oracle) on an uncorrelated 2-D sample:
    within 3 % of the peak everywhere on the grid."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 3, 6000), rng.normal(-5, 0.4, 1500)])
    y = np.concatenate([rng.normal(0, 3, 6000), rng.normal(0, 0.4, 1500)])
    lim = (-12.0, 12.0, -12.0, 12.0)
    gx, gy, dens = binned_kde(x, y, lim)
    kde = gaussian_kde(np.vstack([x, y]), bw_method=lambda k: k.n ** (-1 / 6))
    # scipy scales the bandwidth by the sample covariance; ours by each axis' std: equal here
    # to within the sample's correlation (~0).
    ref = kde(np.vstack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
    assert np.max(np.abs(dens - ref)) < 0.03 * ref.max()


def test_plan_writes_nothing_and_shows_every_file(tmp_path):
    from tgpcore.simulate import simulate_night

    nt = simulate_night(tmp_path / "night", preset="tiny", seed=1)
    work = tmp_path / "cwd"
    work.mkdir()
    res = _run(["plan", "--data", str(nt.raw_dir)], work)
    assert res.returncode == 0, res.stderr
    n_files = sum(1 for p in Path(nt.raw_dir).rglob("*") if p.is_file())
    assert f"Files ({n_files}):" in res.stdout
    assert "Masters (" in res.stdout and "from: " in res.stdout
    assert list(work.iterdir()) == []            # no ./tgp-out, no database
    assert "prefect" not in res.stderr.lower()


def test_plan_record_stores_the_run(tmp_path):
    from tgpcore.simulate import simulate_night

    nt = simulate_night(tmp_path / "night", preset="tiny", seed=1)
    out = tmp_path / "out"
    res = _run(["plan", "--data", str(nt.raw_dir), "--record", "--out", str(out)], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "recorded in" in res.stdout
    assert (out / "tgp-runs.sqlite").exists()


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_plan_bad_folder_is_one_clear_line(tmp_path, case):
    data = tmp_path / "night"
    if case == "empty":
        data.mkdir()
    res = _run(["plan", "--data", str(data)], tmp_path)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    msg = "no FITS files in" if case == "empty" else "does not exist"
    assert msg in res.stderr and str(data) in res.stderr


def test_cli_import_loads_no_prefect():
    code = ("import sys, flows.cli, flows.commands.plan, flows.commands.members, "
            "flows.commands.fit; print(sorted(m for m in sys.modules if m.startswith("
            "('prefect', 'dask', 'distributed', 'uvicorn'))))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


@pytest.mark.realdata
def test_members_runs_the_library_without_prefect(tmp_path):
    cat = DATA / "gaia_m67" / "NGC2682_M67-result.csv"
    if not cat.exists():
        pytest.skip("shared M67 cone not available")
    code = ("import sys; from flows.commands.members import main; "
            f"rc = main(['--catalog', {str(cat)!r}, '--out', {str(tmp_path / 'm')!r}, "
            "'--n-boot', '10']); "
            "assert not [m for m in sys.modules if m.startswith('prefect')]; sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         timeout=600)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "cluster found" in res.stdout
    summary = json.loads((tmp_path / "m" / "membership.json").read_text())
    assert abs(summary["centroid"]["parallax_mas"] - 1.154) < 0.01
    for name in ("members_sky.png", "members_cmd.png", "members_pm.png", "members_radial.png"):
        assert (tmp_path / "m" / name).stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]   # nothing else written


def test_fit_bad_input_is_one_clear_line(tmp_path):
    res = _run(["fit", "--catalog", str(tmp_path / "nope.ecsv"), "--out", str(tmp_path / "f")],
               tmp_path)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "nope.ecsv" in res.stderr


def test_run_log_file_and_quiet_libraries(tmp_path, monkeypatch):
    import logging

    from flows.console import attach_run_log, configure_console

    for var in ("DASK_LOGGING__DISTRIBUTED", "PREFECT_LOGGING_SETTINGS_PATH"):
        monkeypatch.setenv(var, "")  # restored after the test, whatever it was
        monkeypatch.delenv(var)
    configure_console(verbose=False)
    assert os.environ["DASK_LOGGING__DISTRIBUTED"] == "warning"
    assert logging.getLogger("distributed").level == logging.WARNING
    h = attach_run_log(tmp_path)
    try:
        logging.getLogger("tgp").info("calibrated 3/3 frames")
        logging.getLogger("distributed.scheduler").info("chatter")
        logging.getLogger("distributed.scheduler").warning("a worker died")
        h.flush()
        text = (tmp_path / "run.log").read_text()
        assert "calibrated 3/3 frames" in text and "a worker died" in text
        assert "chatter" not in text
    finally:
        for name in ("tgp", "prefect", "distributed", "flows", "tasks", "tgpcore"):
            logging.getLogger(name).removeHandler(h)
        h.close()


def test_plan_only_imports_no_prefect(tmp_path):
    """``python -m flows.full_run --plan-only`` runs from the library: Prefect, Dask and the
    API server are never imported."""
    from tgpcore.simulate import simulate_night

    nt = simulate_night(tmp_path / "night", preset="tiny", seed=1)
    code = ("import sys, runpy; sys.argv = ['flows.full_run', '--data', "
            f"{str(nt.raw_dir)!r}, '--out', {str(tmp_path / 'out')!r}, '--plan-only']\n"
            "try:\n    runpy.run_module('flows.full_run', run_name='__main__')\n"
            "except SystemExit as e:\n    rc = e.code\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('prefect', 'distributed', "
            "'uvicorn', 'prefect_dask')]\n"
            "print('LOADED', bad); sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "LOADED []" in res.stdout
    assert "frames can be calibrated" in res.stdout


def test_the_answer_names_the_bands_each_fit_used():
    """The end of a run names each fit by the bands it used (a night without U says B, V)."""
    from flows.full_run import science_lines

    summary = {f"{k}{s}": 0.1 for k in ("log_age", "dm", "ebv", "mh") for s in ("", "_err")}
    result = {"isochrone_fit": {"NGC 2420": {
        "status": "ok", "photometry": "johnson",
        "fits": {"johnson": {"status": "ok", "label": "our B, V", "summary": summary,
                             "fit_json": "fit.json"},
                 "gaia": {"status": "failed", "message": "no members"}}}}}
    lines = science_lines(result)
    assert lines[0].startswith("isochrone fit NGC 2420 (our B, V; the cluster): log age")
    assert lines[2] == "isochrone fit NGC 2420 (Gaia G, BP, RP): FAILED: no members"


def test_prefect_logging_file_is_prefects_own_but_for_the_console():
    """flows/prefect_logging.yml is Prefect's file with tgp's changes to the console only
    (checked again at every Prefect upgrade)."""
    import importlib.util

    import yaml

    from flows.console import PREFECT_LOGGING_FILE, tgp_changes

    spec = importlib.util.find_spec("prefect")
    theirs = Path(spec.submodule_search_locations[0]) / "logging" / "logging.yml"
    assert (yaml.safe_load(PREFECT_LOGGING_FILE.read_text())
            == tgp_changes(yaml.safe_load(theirs.read_text())))


def test_console_leaves_out_task_runs_info_lines():
    import logging

    from flows.console import QuietTaskRuns

    def rec(name, level):
        return logging.LogRecord(name, level, __file__, 1, "m", (), None)

    keep = QuietTaskRuns().filter
    assert not keep(rec("prefect.task_runs", logging.INFO))
    assert keep(rec("prefect.task_runs", logging.WARNING))
    assert keep(rec("prefect.flow_runs", logging.INFO))      # the stages' progress lines


def test_console_prints_a_failed_tasks_exception_in_one_line():
    """No traceback per failed task on the console; the handlers after it still get it."""
    import logging

    from flows.console import ConsoleFormatter

    try:
        raise ValueError("frame 3 is broken")
    except ValueError:
        import sys

        record = logging.LogRecord("prefect.task_runs", logging.ERROR, __file__, 1,
                                   "Task run failed with exception: %r", (sys.exc_info()[1],),
                                   sys.exc_info())
    text = ConsoleFormatter(format="%(levelname)s | %(message)s").format(record)
    assert text.startswith("ERROR | Task run failed with exception: ValueError('frame 3 is")
    assert "Traceback" not in text and len(text.splitlines()) == 1
    full = logging.Formatter("%(message)s").format(record)
    assert "Traceback (most recent call last)" in full
