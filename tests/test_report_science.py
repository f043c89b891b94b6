"""The report's first screen leads with the science (issue 24): each fitted cluster's
parameters from our own photometry with Gaia's check, the truth of a simulated night or the
literature of a real cluster, the diagrams and the members on the field; then the night's
zero points, extinction, sky and depth. Checked on the page itself and in headless Chromium
(the parameters table is on the first screen; no figure is blank)."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import PIL.Image
import pytest
from _reportrun import FIT, STAGES, make_fake_run
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from tgpcore.catalogs.literature import literature_parameters
from tgpcore.catalogs.retry import RetryPolicy
from tgpcore.report import write_report
from tgpcore.report.science import (
    limiting_magnitudes,
    night_quality_table,
    parameter_table,
)
from tgpcore.rundb import RunDB, open_db

OWN = {k: {**v, "err_stat": 0.01, "err_sys": 0.02, "err_total": 0.0224} for k, v in FIT.items()
       if k in ("log_age", "dm", "ebv", "mh")}
OWN.update({"data": {"n_stars": 300, "observables": ["V", "B", "U"]},
            "derived": FIT["derived"], "warnings": ["a warning the reader must see"]})
GAIA = {k: {**v, "p50": v["p50"] + 0.01, "err_total": 0.03} for k, v in OWN.items()
        if k in ("log_age", "dm", "ebv", "mh")}
GAIA["data"] = {"n_stars": 250, "observables": ["G", "BP", "RP"]}


def test_parameter_table_holds_ours_gaia_truth_and_literature():
    truth = {"cluster": {"log_age": 9.6, "distance_modulus": 9.65, "ebv": 0.04, "mh": 0.0}}
    lit = [{"source": "Cantat-Gaudin+2020", "log_age": 9.63, "dm": 9.75, "ebv": 0.0226,
            "mh": None}]
    t = parameter_table(OWN, GAIA, truth, lit)
    assert t.columns[:5] == ["parameter", "ours (V/B/U)", "± stat", "± sys", "± total"]
    assert "Gaia check" in t.columns and "truth (simulated)" in t.columns
    assert t.columns[-1] == "Cantat-Gaudin+2020"
    row = t.rows[0]
    assert row[1] == 9.6 and row[2] == 0.01 and row[3] == 0.02
    assert row[-1] == 9.63 and row[-2] == 9.6
    apart = row[t.columns.index("apart (σ)")]
    assert apart == pytest.approx(0.01 / np.hypot(0.0224, 0.03))


def test_literature_from_vizier_is_cached_and_offline_safe(tmp_path):
    from test_catalogs import CG2020_VOT, fake_vizier

    from tgpcore.catalogs.cache import DirectoryCache

    with fake_vizier(CG2020_VOT) as (srv, svc):
        cache = DirectoryCache(tmp_path)
        (row,) = literature_parameters("NGC2682", cache=cache, service=svc,
                                       policy=RetryPolicy(attempts=1, timeout=5.0))
        assert row["log_age"] == 9.63 and row["dm"] == 9.75
        assert row["ebv"] == pytest.approx(0.07 / 3.1)
        assert b"Cluster==NGC_2682" in srv.requests[0][2]
        n = len(srv.requests)
        (again,) = literature_parameters("NGC 2682", cache=cache, offline=True)
        assert again["log_age"] == 9.63 and len(srv.requests) == n
    (none,) = literature_parameters("NGC 2420", cache=DirectoryCache(tmp_path), offline=True)
    assert none["log_age"] is None and "not available" in none["note"]


def test_limiting_magnitude_and_night_table(tmp_path):
    rng = np.random.default_rng(1)
    m = rng.uniform(12, 21, 400)
    err = 10 ** (0.4 * (m - 21.0)) * 0.1086 + 0.002     # S/N 10 at 21, S/N 5 near 21.75
    t = Table({"V": m + rng.normal(0, err), "V_err": err})
    t.meta["bands"] = ["V"]
    path = tmp_path / "cat.ecsv"
    t.write(path)
    lim = limiting_magnitudes(path)
    assert lim["V"] == pytest.approx(21.0 + 2.5 * np.log10(2.0), abs=0.1)
    table = night_quality_table([{"filter": "V", "zp": 23.1, "zp_err": 0.01, "k": 0.15,
                                  "k_err": 0.01, "c": -0.03, "c_err": 0.005, "colour": "B-V",
                                  "method": "standards"}],
                                {"C/p0/V/long": 20.9, "C/p1/V/long": 21.1}, lim)
    (row,) = table.rows
    assert row[0] == "V" and row[1] == 23.1 and row[-2] == pytest.approx(21.0)
    assert row[-1] == pytest.approx(lim["V"])


def _science_run(tmp_path):
    engine = open_db(f"sqlite:///{tmp_path / 'tgp-runs.sqlite'}")
    db = RunDB(engine)
    run = make_fake_run(db, tmp_path / "out")
    fit = run.run_dir / "fit" / "NGC1"
    (fit / "fit.json").write_text(json.dumps(OWN))
    gdir = run.run_dir / "fit" / "NGC1_gaia"
    gdir.mkdir()
    (gdir / "fit.json").write_text(json.dumps(GAIA))
    (gdir / "cmd.png").write_bytes((fit / "cmd.png").read_bytes())
    # a mosaic with a WCS and a matched catalogue: the members on the field
    w = WCS(naxis=2)
    w.wcs.crpix, w.wcs.cdelt = [250.5, 350.5], [-0.5 / 3600, 0.5 / 3600]
    w.wcs.crval, w.wcs.ctype = [100.0, 20.0], ["RA---TAN", "DEC--TAN"]
    rng = np.random.default_rng(2)
    img = rng.normal(10.0, 1.0, (700, 500)).astype(np.float32)
    fits.PrimaryHDU(img, header=w.to_header()).writeto(run.run_dir / "mosaics" / "NGC1_V_long.fits")
    x, y = rng.uniform(20, 480, 60), rng.uniform(20, 680, 60)
    ra, dec = w.pixel_to_world_values(x, y)
    (run.run_dir / "catalogs").mkdir(exist_ok=True)
    Table({"id": np.arange(60), "ra": ra, "dec": dec,
           "p_member": np.where(np.arange(60) < 30, 0.95, 0.05)}).write(
        run.run_dir / "catalogs" / "NGC1_matched.ecsv", overwrite=True)
    return engine, db, run


def test_first_section_is_the_science(tmp_path):
    engine, db, run = _science_run(tmp_path)
    page, report = write_report(run.run_dir, db, stages=STAGES)
    engine.dispose()
    first = report.sections[0]
    assert first.key == "science:NGC1"
    assert first.tables[0].columns[1] == "ours (V/B/U)" and "Gaia check" in first.tables[0].columns
    assert any("a warning the reader must see" in n for n in first.notes)
    titles = [f.title for f in first.figures]
    assert titles[:2] == ["colour-magnitude diagram (our photometry)",
                          "two-colour diagram with the reddening vector"]
    assert "Gaia's colour-magnitude diagram (the check)" in titles
    assert "members on the field" in titles
    assert report.sections[1].key == "night"
    html = page.read_text()
    assert html.index("NGC1: the cluster") < html.index("Per-frame QC")
    assert "<details>" in html          # QC tables folded below
    # no figure is blank: every embedded image decodes and has structure
    for uri in re.findall(r'src="data:image/png;base64,([^"]+)"', html):
        px = np.asarray(PIL.Image.open(io.BytesIO(base64.b64decode(uri))).convert("L"), float)
        assert px.size > 100 and px.std() > 1.0


@pytest.mark.slow
def test_first_screen_in_chromium_holds_the_parameters(tmp_path):
    from test_report_render import _chromium, _run_chromium

    exe = _chromium()
    engine, db, run = _science_run(tmp_path)
    page, _ = write_report(run.run_dir, db, stages=STAGES)
    engine.dispose()
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", """<script>
window.addEventListener('load', function () {
  var t = document.querySelector('section table');
  var r = t.getBoundingClientRect();
  var pre = document.createElement('pre'); pre.id = 'tgp-first-screen';
  pre.textContent = JSON.stringify({top: r.top, bottom: r.bottom, height: window.innerHeight,
                                    text: t.innerText.slice(0, 200)});
  document.body.appendChild(pre);
});
</script></body>"""))
    proc = _run_chromium(exe, tmp_path / "profile", "--window-size=1280,900",
                         "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    m = re.search(r'<pre id="tgp-first-screen">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-2000:]
    got = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert got["bottom"] <= got["height"], got      # the whole table on the first screen
    assert "log age" in got["text"] and "Gaia check" in got["text"], got
