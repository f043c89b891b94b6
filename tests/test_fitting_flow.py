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

QUICK = ["--walkers", "12", "--steps", "60", "--burn", "20"]


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
    for png in ("cmd.png", "colour_colour.png", "corner.png"):
        assert (out / png).stat().st_size > 10_000
    back = read_fit_hdf5(out / "fit.h5")
    assert back["samples"].shape[1] == 6 and len(back["stars"]["p_cluster"]) > 300
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


def test_stage_records_product_and_qc(tmp_path, catalogue, monkeypatch):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    cat, members, _ = catalogue
    session = open_session(tmp_path, tmp_path / "out", None, {})
    params = IsochroneFitParams(catalog=str(cat), members=str(members),
                                out=str(session.run_dir / "fit"), system="johnson",
                                n_walkers=12, n_steps=60, n_burn=20, plots=False)

    @flow
    def wrapper():
        return run_isochrone_fit_stage(session, cat, members, session.run_dir / "fit", params)

    out = wrapper()
    assert set(out["summary"]) >= {"log_age", "log_age_p16", "dm_err", "n_stars"}
    db, _ = run_database(tmp_path / "out")
    events = {e.stage: e.status for e in db.stage_events(session.run_id)}
    assert events["isochrone_fit"] == "succeeded"
    assert db.find_product(out["product_key"]) is not None
