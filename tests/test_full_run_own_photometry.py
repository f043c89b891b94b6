"""The cluster's parameters from the night's own photometry, end to end (issue 21).

A simulated night (the demo's cluster and detector, one pointing, two dithers per filter) goes
from raw frames to calibrated U, B, V, is matched to Gaia and fitted. Two runs:

1. **Offline, with a published member list and no Gaia cone** (``--members FILE``, the Gaia
   archive unreachable): the member list serves as the Gaia table, its probabilities weight
   the fit of our own V vs B-V and U-B vs B-V, and the Gaia-band fit of the same members runs
   beside it as the check.
2. **Without U** (the night's U frames removed): the fit uses B and V alone.

Tolerances (issue 21, the demo night): |d log age| <= 0.05 dex, |d (m-M)0| <= 0.1 mag,
|d E(B-V)| <= 0.03 mag, |d [M/H]| <= 0.1 dex against the simulator's truth; and the fit's
total 68 % error bars cover the truth within 3 of them (one night: a coverage statement
needs many, see the closing note's recovery run).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from flows.full_run import FullRunParams, full_run_flow
from flows.runners import RunnerSettings, make_task_runner
from tgpcore.simulate import simulate_night

THREADS = RunnerSettings(kind="threads", n_workers=2)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
TOL = {"log_age": 0.05, "dm": 0.1, "ebv": 0.03, "mh": 0.1}


@pytest.fixture(scope="module")
def night(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("own") / "night"
    nt = simulate_night(root, preset="demo", seed=2, workers=2,
                        pointing_offsets=((0.0, 0.0),), n_dither=2)
    # a published member list: the Gaia table's true members, with probabilities
    gaia = Table.read(nt.gaia_path)
    stars = Table.read(nt.stars_path)
    members = set(np.asarray(stars["star_id"])[np.asarray(stars["is_member"])].tolist())
    keep = np.array([int(s) in members for s in gaia["source_id"]])
    pub = gaia[keep]
    pub["Pmemb"] = np.full(len(pub), 0.9)
    pub.rename_columns(["source_id", "ra", "dec"], ["Source", "RA_ICRS", "DE_ICRS"])
    pub.write(root / "published_members.ecsv", overwrite=True)
    return root


def _check(fit: dict, truth: dict) -> list[str]:
    want = {"log_age": truth["log_age"], "dm": truth["distance_modulus"], "ebv": truth["ebv"],
            "mh": truth["mh"]}
    s = fit["summary"]
    lines, bad = [], []
    for k, tol in TOL.items():
        err = s[f"{k}_err"]
        d = s[k] - want[k]
        lines.append(f"{k}: {s[k]:.3f} ± {err:.3f} (truth {want[k]:.3f}, diff {d:+.3f})")
        if abs(d) > tol or abs(d) > 3 * err:
            bad.append(lines[-1])
    print("\n".join(lines))
    return bad


def _run(night: Path, data: Path, out: Path, **catalogues) -> tuple[dict, dict]:
    """The full run of ``data`` with the night's standards and a short fit (threads); returns
    its result and the simulator's true cluster."""
    params = FullRunParams(data=str(data), out=str(out),
                           standards_catalog=str(night / "truth" / "standards.ecsv"),
                           fit_walkers=16, fit_steps=120, fit_burn=40, fit_max_steps=600,
                           runner=THREADS, **catalogues)
    result = full_run_flow.with_options(task_runner=make_task_runner(THREADS))(params)
    truth = json.loads((night / "truth" / "truth.json").read_text())["cluster"]
    return result, truth


def test_offline_with_a_published_member_list(night, tmp_path, monkeypatch):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    monkeypatch.setenv("TGP_OFFLINE", "1")
    result, truth = _run(night, night / "raw", tmp_path / "out",
                         members=str(night / "published_members.ecsv"),
                         reference_catalog=str(night / "truth" / "gaia.ecsv"))
    name = truth["name"]
    assert result["catalogs"][name]["origin"] == "published member list"
    assert result["membership"][name]["status"] == "ok"
    cm = result["crossmatch"][name]
    assert cm["status"] == "ok" and cm["summary"]["n_members_p50"] > 100, cm
    fit = result["isochrone_fit"][name]
    assert fit["status"] == "ok" and fit["photometry"] == "johnson", fit
    fit_json = json.loads(Path(fit["fit_json"]).read_text())
    assert fit_json["data"]["observables"][0] == "V"
    assert set(fit_json["data"]["observables"]) >= {"V", "B", "U"} or \
        {"V", "B-V", "U-B"} <= set(fit_json["data"]["observables"]), fit_json["data"]
    assert not _check(fit, truth)
    assert set(fit["fits"]) == {"johnson", "gaia"} and "comparison" in fit
    assert Path(cm["ecsv"]).is_file() and Path(cm["fits"]).is_file()


def test_a_night_without_u_fits_b_and_v(night, tmp_path, monkeypatch):
    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    raw = tmp_path / "raw"
    shutil.copytree(night / "raw", raw)
    from astropy.io import fits

    for p in raw.glob("*.fits"):
        if fits.getheader(p).get("FILTER") == "U":
            p.unlink()
    result, truth = _run(night, raw, tmp_path / "out",
                         gaia_file=str(night / "truth" / "gaia.ecsv"))
    fit = result["isochrone_fit"][truth["name"]]
    assert fit["status"] == "ok" and fit["photometry"] == "johnson", fit
    obs = json.loads(Path(fit["fit_json"]).read_text())["data"]["observables"]
    assert "U" not in obs and "U-B" not in obs and obs[0] == "V", obs
    assert not _check(fit, truth)
