"""The isochrone-fit flow: ``tgp fit`` on a simulated catalogue, products, run database."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from prefect import flow

from flows.cli import main as tgp_main
from flows.isochrone_fit import IsochroneFitParams, run_isochrone_fit_stage
from flows.session import open_session, run_database
from tgpcore.fitting.mock import mock_cluster
from tgpcore.fitting.result import read_fit_hdf5
from tgpcore.isochrones import load_grid

pytestmark = pytest.mark.usefixtures("prefect_harness")

QUICK = ["--walkers", "12", "--steps", "80", "--burn", "30", "--max-steps", "100"]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """A simulated cluster as an ECSV catalogue (U B V with errors, Gaia photometry) and its
    membership table in the form ``tgp members`` writes."""
    d = tmp_path_factory.mktemp("fitcat")
    mc = mock_cluster(load_grid(), np.random.default_rng(21), log_age=9.2, mh=-0.1, dm=10.6,
                      ebv=0.12, n_members=400, field_fraction=0.08)
    cat = mc.catalog
    members = cat["source_id", "p_member"].copy()
    cat.remove_column("p_member")
    cat.write(d / "catalog.ecsv")
    members.write(d / "members.ecsv")
    return d / "catalog.ecsv", d / "members.ecsv", mc.truth


def test_tgp_fit_command_writes_fit_json_and_plots(tmp_path, catalogue):
    cat, members, truth = catalogue
    out = tmp_path / "fit"
    rc = tgp_main(["fit", "--catalog", str(cat), "--members", str(members), "--system",
                   "johnson", "--out", str(out), *QUICK])
    assert rc == 0
    fit = json.loads((out / "fit.json").read_text())
    for k in ("log_age", "dm", "ebv", "mh"):
        assert {"p16", "p50", "p84"} <= set(fit[k]) and fit[k]["p16"] <= fit[k]["p84"]
    # a short chain, loose tolerances: right cluster, not a stuck fit
    assert abs(fit["log_age"]["p50"] - truth["log_age"]) < 0.1
    assert abs(fit["dm"]["p50"] - truth["dm"]) < 0.15
    assert abs(fit["ebv"]["p50"] - truth["ebv"]) < 0.05
    assert fit["covariance"]["parameters"][:4] == ["log_age", "mh", "dm", "ebv"]
    assert "emcee" in fit["method"] and fit["data"]["observables"] == ["V", "B", "U"]
    # stat, sys and total errors with their methods; the budget's sources; warnings on top
    for k in ("log_age", "dm", "ebv", "mh"):
        p = fit[k]
        assert p["err_total"] == pytest.approx(np.hypot(p["err_stat"], p["err_sys"]))
        assert p["err_sys"] > 0 and p["total_p16"] <= p["p16"] <= p["p84"] <= p["total_p84"]
    assert {"stat", "sys", "total"} <= set(fit["errors_method"])
    assert {"magnitude range", "binary model", "extinction", "isochrone models"} <= set(
        fit["systematics"]["sources"])
    assert isinstance(fit["warnings"], list)
    assert any("did not converge" in w for w in fit["warnings"])   # capped at 100 steps
    assert fit["parallax_prior"] == {"used": False, "reason": "no parallaxes of members known"}
    for png in ("cmd.png", "colour_colour.png", "corner.png"):
        assert (out / png).stat().st_size > 10_000
    back = read_fit_hdf5(out / "fit.h5")
    # the stars fitted are those of the trusted range (main sequence hotter than 5000 K)
    n_fit = fit["data"]["n_stars"]
    assert back["samples"].shape[1] == 6 and len(back["stars"]["p_cluster"]) == n_fit
    assert 150 < n_fit < fit["data"]["n_input_stars"]
    with h5py.File(out / "fit.h5") as h5:
        assert "V" in h5["best_isochrone"]


def test_fix_gaia_system_and_bad_input(tmp_path, catalogue):
    cat, members, _ = catalogue
    out = tmp_path / "gaia"
    rc = tgp_main(["fit", "--catalog", str(cat), "--members", str(members), "--system", "gaia",
                   "--fix", "mh=-0.1", "--prior", "dm=10.6+-0.05", "--no-plots",
                   "--out", str(out), *QUICK])
    assert rc == 0
    fit = json.loads((out / "fit.json").read_text())
    assert fit["mh"]["fixed"] and fit["mh"]["p50"] == -0.1
    assert fit["data"]["observables"] == ["G", "BP", "RP"]
    assert "Gaussian 10.6" in fit["priors"]["dm"]["text"]
    assert tgp_main(["fit", "--catalog", str(tmp_path / "missing.ecsv"), "--out",
                     str(out)]) == 2
    assert tgp_main(["fit", "--catalog", str(cat), "--fix", "nonsense=1", "--out",
                     str(out)]) == 2


def test_our_calibrated_catalogue_with_a_published_member_list(tmp_path, catalogue):
    """``tgp fit`` on a catalogue shaped like the pipeline's calibrated one (``id ra dec U
    U_err U_flags ...``, zero-point errors in ``meta['calibration']``, no Gaia ids) with a
    published member list (``Source RA_ICRS DE_ICRS Plx e_Plx Pmemb``): joined by position,
    the members' parallax becomes the distance prior, flags and zero points enter the fit."""
    from astropy.table import Table

    cat_path, members_path, truth = catalogue
    cat = Table.read(cat_path)
    mem = Table.read(members_path)
    rng = np.random.default_rng(4)
    n = len(cat)
    ra, dec = 114.6 + rng.uniform(-0.06, 0.06, n), 21.57 + rng.uniform(-0.06, 0.06, n)
    ours = Table({"id": np.arange(1, n + 1), "ra": ra, "dec": dec})
    for b in ("U", "B", "V"):
        ours[b], ours[f"{b}_err"] = cat[b], cat[f"{b}_err"]
        ours[f"{b}_flags"] = np.where(rng.random(n) < 0.05, 4, 0)      # 5 % blended
    ours["V_flags"][:5] = 1                                             # saturated
    ours.meta["calibration"] = {b: {"zp_err": 0.01} for b in ("U", "B", "V")}
    ours_path = tmp_path / "night_calibrated.ecsv"
    ours.write(ours_path)
    p = np.asarray(mem["p_member"], float)
    is_m = p > 0.5
    plx_true = 10 ** ((10 - truth["dm"]) / 5)
    pub = Table({"Source": 600_000_000_000 + np.arange(n)[is_m],
                 "RA_ICRS": ra[is_m] + rng.normal(0, 0.1 / 3600, is_m.sum()),
                 "DE_ICRS": dec[is_m] + rng.normal(0, 0.1 / 3600, is_m.sum()),
                 "Plx": plx_true - 0.017 + rng.normal(0, 0.03, is_m.sum()),
                 "e_Plx": np.full(is_m.sum(), 0.03), "Pmemb": p[is_m]})
    pub_path = tmp_path / "members_published.csv"
    pub.write(pub_path, format="ascii.csv")
    out = tmp_path / "ours"
    assert tgp_main(["fit", "--catalog", str(ours_path), "--members", str(pub_path),
                     "--no-plots", "--out", str(out), *QUICK]) == 0
    fit = json.loads((out / "fit.json").read_text())
    notes = " ".join(fit["data"]["notes"])
    assert f"{int(is_m.sum())} of {int(is_m.sum())} stars of the member list matched by " \
           "position" in notes
    assert "saturated" in notes and "zero-point" in notes
    assert fit["parallax_prior"]["used"] and fit["parallax_prior"]["n_stars"] > 100
    assert fit["data"]["zero_point_sigma"] == {"V": 0.01, "B": 0.01, "U": 0.01}
    assert "zero point" in fit["systematics"]["sources"]
    assert abs(fit["dm"]["p50"] - truth["dm"]) < 3 * fit["dm"]["err_total"]


def test_stage_records_product_and_qc(tmp_path, catalogue, monkeypatch):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    cat, members, _ = catalogue
    session = open_session(tmp_path, tmp_path / "out", None, {})
    params = IsochroneFitParams(catalog=str(cat), members=str(members),
                                out=str(session.run_dir / "fit"), system="johnson",
                                n_walkers=12, n_steps=60, n_burn=30, max_steps=60,
                                systematics=False, plots=False)

    @flow
    def wrapper():
        return run_isochrone_fit_stage(session, cat, members, session.run_dir / "fit", params)

    out = wrapper()
    assert set(out["summary"]) >= {"log_age", "log_age_p16", "dm_err", "n_stars",
                                   "dm_err_stat", "dm_err_sys", "converged", "n_warnings"}
    assert all(isinstance(v, float) for v in out["summary"].values())
    assert isinstance(out["warnings"], list)
    db, _ = run_database(tmp_path / "out")
    events = {e.stage: e.status for e in db.stage_events(session.run_id)}
    assert events["isochrone_fit"] == "succeeded"
    assert db.find_product(out["product_key"]) is not None
