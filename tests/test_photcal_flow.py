"""The photometry and photcal flows as a user starts them (``python -m flows.photometry`` and
``python -m flows.photcal``): a tiny simulated night from raw frames to calibrated U, B, V
catalogues, recorded in the run database. The second flow reuses the first one's products."""

from __future__ import annotations

import pytest
from astropy.table import Table

from flows.photcal import main as photcal_main
from flows.photometry import main as photometry_main
from flows.session import run_database
from tgpcore.simulate import simulate_night

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def test_photometry_then_photcal_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    monkeypatch.setenv("TGP_OFFLINE", "1")
    nt = simulate_night(tmp_path / "night", preset="tiny", seed=2)
    common = ["--data", str(nt.raw_dir), "--out", str(tmp_path / "out"),
              "--reference-catalog", str(nt.gaia_path), "--runner", "threads"]
    assert photometry_main(common) == 0, capsys.readouterr().out
    assert photcal_main([*common, "--standards", str(nt.standards_path)]) == 0, \
        capsys.readouterr().out
    out = capsys.readouterr().out
    for band in "UBV":
        assert f"/{band}: ZP " in out, out
    db, _ = run_database(tmp_path / "out")
    runs = db.list_runs()
    assert len(runs) == 2 and all(r.status == "succeeded" for r in runs)
    first, second = sorted(runs, key=lambda r: r.created_at)
    # the photcal run reused the photometry run's calibrated frames instead of redoing them
    calibrated = db.products(second.id, kind="calibrated")
    assert len(calibrated) == 21 and all(first.id in p.path for p in calibrated)
    (cat_path,) = sorted((tmp_path / "out").glob("*/catalogs/*_calibrated.ecsv"))
    cat = Table.read(cat_path)
    assert {"U", "B", "V", "U_err", "B_err", "V_err", "ra", "dec"} <= set(cat.colnames)
    assert len(cat) > 50 and (~cat["V"].mask).sum() > 50
