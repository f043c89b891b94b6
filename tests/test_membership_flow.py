"""The membership flow under Prefect's test harness: ``tgp members`` and the stage function."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.table import Table, vstack

from flows.cli import main as tgp_main
from flows.membership import MembershipParams, run_membership_stage
from flows.session import open_session
from tgpcore.isochrones.grid import load_packaged_grid
from tgpcore.simulate.gaia import synthesize_gaia
from tgpcore.simulate.population import sample_cluster, sample_field
from tgpcore.simulate.region import SkyRegion

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture(scope="module")
def cone_file(tmp_path_factory):
    rng = np.random.default_rng(21)
    grid = load_packaged_grid()
    reg = SkyRegion("cone", 97.5, 24.5, -0.2, 0.2, -0.2, 0.2)
    stars = vstack([
        sample_cluster(grid, rng, name="SIM", ra=97.5, dec=24.5, log_age=9.0, mh=0.0,
                       distance_pc=1500.0, ebv=0.2, core_radius_arcmin=1.5,
                       tidal_radius_arcmin=10.0, n_systems=2500, binary_fraction=0.3,
                       pmra_masyr=-0.9, pmdec_masyr=-2.6, velocity_dispersion_kms=0.8,
                       faint_limit_v=23.0, region=reg),
        sample_field(grid, rng, region=reg, density_arcmin2=6.0, faint_limit_v=23.0,
                     ebv_per_kpc=0.2, ebv_max=0.5, binary_fraction=0.3)])
    stars["star_id"] = np.arange(1, len(stars) + 1, dtype=np.int64)
    path = tmp_path_factory.mktemp("cone") / "sim_gaia.ecsv"
    synthesize_gaia(stars, rng).write(path)
    return path


def test_tgp_members_cli_writes_products(cone_file, tmp_path, capsys):
    out = tmp_path / "members"
    rc = tgp_main(["members", "--catalog", str(cone_file), "--ra", "97.5", "--dec", "24.5",
                   "--radius", "0.2", "--out", str(out), "--n-boot", "20"])
    assert rc == 0
    assert "cluster found" in capsys.readouterr().out
    members = Table.read(out / "members.ecsv")
    assert len(members) == len(Table.read(cone_file))
    summary = json.loads((out / "membership.json").read_text())
    assert summary["status"] == "ok" and abs(summary["centroid"]["pmra_masyr"] + 0.9) < 0.05
    assert summary["king"]["rc_err_arcmin"] > 0
    assert (out / "members_pm.png").exists() and (out / "members_radial.png").exists()


def test_tgp_members_missing_column_is_a_clear_error(cone_file, tmp_path, capsys):
    t = Table.read(cone_file)
    t.remove_column("pmdec")
    bad = tmp_path / "bad.csv"
    t.write(bad, format="ascii.csv")
    rc = tgp_main(["members", "--gaia-file", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and str(bad) in err and "'pmdec'" in err


def test_run_membership_stage_records_product(cone_file, tmp_path, monkeypatch):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    from prefect import flow

    session = open_session(tmp_path, tmp_path / "out", None, {})

    @flow
    def wrapper():
        return run_membership_stage(session, cone_file, (97.5, 24.5),
                                    session.run_dir / "catalogs", 0.2,
                                    MembershipParams(out="unused", n_boot=20, n_boot_king=10,
                                                     plots=False))

    out = wrapper()
    assert out["status"] == "ok"
    products = session.db.products(session.run_id, kind="members")
    assert len(products) == 1 and products[0].path == out["members"]
    events = {e.stage: e.status for e in session.db.stage_events(session.run_id)}
    assert events["membership"] == "succeeded"
