"""A simulated night through every stage up to calibrated catalogues, against its truth.

Simulated frames -> calibration -> stacks -> WCS -> photometry -> standards fit ->
calibrated U, B, V catalogue. Tolerances (from the issue): fitted k within 0.01 mag/airmass
and ZP within 0.01 mag of the truth; bright stars (S/N > 100) RMS <= 0.01 mag in B and V,
<= 0.02 in U; std of (measured - true)/error within 0.8-1.2 for S/N > 10. The truth
comparison uses stars without a true neighbour within 3 FWHM brighter than 4 mag fainter
than themselves (an unresolved blend is one detection, not a photometry error); the
bright-star RMS leaves out stars calibrated with an assumed colour (saturated or missing in
the other band of their colour: flagged, with the colour spread in their error), which the
pull test keeps. A second
calibration with only two U standards fails U alone, with the reason, and still calibrates
B and V.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _nightrun import photcal_params, run_in_harness, stages_to_photometry
from astropy.coordinates import SkyCoord
from astropy.table import Table
from prefect import flow

from flows.photcal import run_photcal_stage
from flows.runners import RunnerSettings
from flows.session import run_database
from tgpcore.photcal import read_hdf5_table
from tgpcore.photometry import flags as F
from tgpcore.simulate import simulate_night

pytestmark = pytest.mark.slow
THREADS = RunnerSettings(kind="threads", n_workers=2)


@pytest.fixture(scope="module")
def night_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("photcal")
    nt = simulate_night(root / "night", preset="tiny", seed=4, n_standards_per_field=14,
                        standard_exptime_s={"U": 60.0, "B": 20.0, "V": 12.0},
                        standard_visits=(("SA 98", 19.5), ("SA 98", 21.0), ("SA 98", 24.0),
                                         ("SA 98", 26.5)))
    # a standards file where only two stars have U (the others V and B-V only)
    stds = Table.read(nt.standards_path)
    crippled_path = root / "standards_few_u.ecsv"
    t = Table({"name": list(stds["name"]), "ra": stds["ra"], "dec": stds["dec"],
               "V": stds["V"], "B_V": stds["B_V"]})
    t["U"] = np.where(np.arange(len(stds)) < 2, stds["V"] + stds["B_V"] + stds["U_B"], np.nan)
    t.write(crippled_path, overwrite=True)
    params = photcal_params(nt, root / "out", THREADS)

    @flow(name="test-photcal-night")
    def night_flow():
        r = stages_to_photometry(params)
        session, inv, cal, sol, phot = r.session, r.inv, r.cal, r.sol, r.phot
        pc = run_photcal_stage(session, params, phot, cal, inv, sol)
        first = next(iter(pc.catalogues.values()))
        pc.first_tables = {"ecsv": Table.read(first["ecsv"]),
                           "hdf5": read_hdf5_table(first["hdf5"], first["hdf5_key"])}
        bad = run_photcal_stage(session, params.model_copy(
            update={"standards_catalog": str(crippled_path)}), phot, cal, inv, sol)
        return session, phot, pc, bad

    session, phot, pc, bad = run_in_harness(night_flow, THREADS)
    return nt, session, phot, pc, bad


def test_extinction_and_zero_points_against_truth(night_run):
    nt, _, _, pc, _ = night_run
    system = nt.params()["photometric_system"]
    assert not {k: v for k, v in pc.failed.items() if "/" in k and k.split("/")[1] in "UBV"}
    ok = {}
    for f in "UBV":
        key = [k for k in pc.solutions if k.endswith(f"/{f}")][0]
        s = pc.solutions[key]
        print(f"{f}: ZP {s['zp'] - system['zp'][f]:+.4f} ± {s['zp_err']:.4f}, "
              f"k {s['k'] - system['k'][f]:+.4f} ± {s['k_err']:.4f}, "
              f"c {s['c'] - system['c'][f]:+.4f} ± {s['c_err']:.4f}, rms {s['rms']:.4f}, "
              f"{s['n_used']} used, {s['n_rejected']} rejected")
        ok[f] = abs(s["k"] - system["k"][f]) <= 0.01 and abs(s["zp"] - system["zp"][f]) <= 0.01
    assert any(Path(p).exists() for p in pc.plots)
    assert all(ok.values()), ok


def _truth_isolated(stars, fwhm_arcsec=2.0, dmag=4.0, band="V"):
    c = SkyCoord(stars["ra"], stars["dec"], unit="deg")
    idx1, idx2, _, _ = c.search_around_sky(c, 3 * fwhm_arcsec / 3600 * __import__(
        "astropy.units").units.deg)
    ok = np.ones(len(stars), bool)
    m = np.asarray(stars[band], float)
    for i, j in zip(idx1, idx2, strict=True):
        if i != j and m[j] < m[i] + dmag:
            ok[i] = False
    return ok


def test_calibrated_catalogue_against_truth(night_run):
    nt, session, _, pc, _ = night_run
    res = next(iter(pc.catalogues.values()))
    cat, back = pc.first_tables["ecsv"], pc.first_tables["hdf5"]
    assert len(back) == len(cat) and Path(res["fits"]).exists()
    assert np.allclose(np.asarray(back["V"]), np.asarray(cat["V"].filled(np.nan)),
                       equal_nan=True)
    stars = nt.stars()
    c1 = SkyCoord(np.asarray(cat["ra"]), np.asarray(cat["dec"]), unit="deg")
    c2 = SkyCoord(stars["ra"], stars["dec"], unit="deg")
    j, sep, _ = c1.match_to_catalog_sky(c2)
    iso = _truth_isolated(stars)[j] & (sep.arcsec < 1.0)
    ok = {}
    for b, tol in (("U", 0.02), ("B", 0.01), ("V", 0.01)):
        m = np.asarray(cat[b].filled(np.nan))
        e = np.asarray(cat[f"{b}_err"].filled(np.nan))
        snr = np.asarray(cat[f"{b}_snr"].filled(0.0))
        fl = np.asarray(cat[f"{b}_flags"].filled(F.BAD))
        d = m - np.asarray(stars[b])[j]
        use = iso & F.is_clean(fl) & np.isfinite(d)
        bright = use & (snr > 100) & ((fl & F.COLOUR_ASSUMED) == 0)
        good = use & (snr > 10)
        rms = float(np.sqrt(np.mean(d[bright] ** 2)))
        pull = float(np.std(d[good] / e[good]))
        print(f"{b}: {bright.sum()} bright stars, RMS {rms:.4f} (<= {tol}); {good.sum()} "
              f"at S/N > 10, pull std {pull:.3f}")
        ok[b] = bright.sum() >= 10 and rms <= tol and 0.8 <= pull <= 1.2
    assert all(ok.values()), ok


def test_too_few_standards_fail_one_filter_only(night_run):
    _, session, _, _, bad = night_run
    u_fail = {k: v for k, v in bad.failed.items() if k.endswith("/U")}
    assert u_fail and any("standard" in v for v in u_fail.values()), bad.failed
    assert any(k.endswith("/B") for k in bad.solutions)
    assert any(k.endswith("/V") for k in bad.solutions)
    res = next(iter(bad.catalogues.values()))
    cat = Table.read(res["ecsv"])
    assert "U" not in cat.colnames and "V" in cat.colnames and "U_inst" in cat.colnames
    db, _ = run_database(session.out_root)
    events = [e for e in db.stage_events(session.run_id) if e.stage == "photcal"]
    # one filter without a solution is a stage that lost part of its work: partial, not done
    # (issue 25), and the night goes on
    assert events and events[-1].status == "partial", [(e.status, e.message) for e in events]
