"""The night report: content gathered from a run folder and the run database, rendered as one
self-contained page."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import numpy as np
import PIL.Image
import pytest
from _reportrun import FIT, STAGES, make_fake_run

from tgpcore.report import fits_thumbnail, redact, safe_db_label, write_report
from tgpcore.report.thumbnails import N_GREY, block_reduce_mean, image_to_png
from tgpcore.rundb import RunDB


class _Collector(HTMLParser):
    """Every URL-bearing attribute and every <img> of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.imgs: list[dict[str, str | None]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        d = dict(attrs)
        if tag == "img":
            self.imgs.append(d)
        for name in ("src", "href", "srcset", "data", "action", "poster"):
            if d.get(name):
                self.urls.append((tag, name, d[name]))


def _parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    return c


def test_report_has_everything_the_run_produced(rundb: RunDB, tmp_path):
    run = make_fake_run(rundb, tmp_path / "out")
    path, report = write_report(run.run_dir, rundb, stages=STAGES,
                                db_url="postgresql+psycopg://tgp:hunter2@db:5432/tgp")
    html = path.read_text()
    assert path == run.run_dir / "report.html"
    page = _parse(html)
    # thumbnails of the 3 stacks (one reused from an earlier run's folder) and the mosaic,
    # and every PNG figure in the run folder, each embedded once
    assert len(page.imgs) == run.images + run.pngs == len(report.figures())
    for img in page.imgs:
        assert img["src"].startswith("data:image/png;base64,")
        content = base64.b64decode(img["src"].split(",", 1)[1])
        assert PIL.Image.open(io.BytesIO(content)).size[0] > 0
    # self-contained: nothing outside the page is referred to, and no scripts
    assert all(u.startswith(("data:", "#")) for _, _, u in page.urls), page.urls
    assert "script" not in page.tags and "link" not in page.tags
    # rejected frames with their reasons; per-frame and product QC; failed and unbuilt stages
    assert "alignment: too few stars matched (2 &lt; 5)" in html
    assert "IMAGETYP &#x27;focus&#x27; is not a known frame type" in html
    assert "812.5" in html and "401.5" in html and "0.0123" in html
    assert "ValueError: no overlap between p0 and p1" in html
    assert "Not built yet: photometry." in report.alerts
    assert any(a.startswith("Failed: mosaic (ValueError") for a in report.alerts)
    assert any(a.startswith("Not run: membership; isochrone_fit; report") for a in report.alerts)
    # fitted parameters with their uncertainties, membership centroid with errors
    fit = next(s for s in report.sections if s.key == "fit:NGC1")
    rows = {r[0]: r for r in fit.tables[0].rows}
    assert rows["log age"][1] == FIT["log_age"]["p50"]
    assert rows["log age"][2] == pytest.approx(0.08) and rows["log age"][3] == pytest.approx(0.11)
    assert rows["[M/H]"][6] is True
    mem = next(s for s in report.sections if s.key == "membership:NGC1")
    assert ["pmra_masyr", -10.97, 0.021, "mas/yr", "Gaussian mixture (test)"] in mem.tables[0].rows
    assert [f.title for f in mem.figures] == ["members pm", "members radial"]
    # the photometric solution with its errors, and its residual plot
    photcal = next(s for s in report.sections if s.key == "photcal")
    assert photcal.tables[0].rows == [["V", "B-V", 22.314, 0.012, 0.153, 0.008, -0.021, 0.006,
                                       0.021, 17, 1, "standard stars (test)"]]
    assert [f.title for f in photcal.figures] == ["photcal 20260101"]
    # sections of stages that did not run say so
    phot = next(s for s in report.sections if s.key == "photometry")
    assert phot.stage_status == "not_built" and "not built yet" in phot.notes[0]
    # the database password is not shown
    assert "hunter2" not in html and safe_db_label(
        "postgresql+psycopg://tgp:hunter2@db:5432/tgp") in html


def test_report_without_database_shows_the_folder(tmp_path, rundb: RunDB):
    run = make_fake_run(rundb, tmp_path / "out")
    path, report = write_report(run.run_dir, None, stages=STAGES,
                                outcome={"failed": {"mosaic": "disk on fire"}})
    html = path.read_text()
    assert "is not in the run database" in html
    # stacks and mosaics found in the folder (the reused stack elsewhere is unknown here)
    assert len(_parse(html).imgs) == (run.images - 1) + run.pngs
    assert "Failed: mosaic (disk on fire)." in report.alerts


def test_secret_values_are_redacted(rundb: RunDB, tmp_path):
    secret = "sk-abcdef0123456789"
    run = make_fake_run(rundb, tmp_path / "out", params={"note": f"key was {secret}"})
    path, _ = write_report(run.run_dir, rundb, stages=STAGES, secrets=[secret, ""])
    html = path.read_text()
    assert secret not in html and "key was ***" in html
    assert redact("a-b-ab", ["ab", "a-b"]) == "***-***"


def test_thumbnail_orientation_scale_and_missing_pixels(tmp_path):
    from astropy.io import fits

    image = np.zeros((50, 80), np.float32)
    image += np.linspace(0, 1, 80, dtype=np.float32)[None, :]
    image[0, 0] = np.nan  # bottom-left pixel of the sky image
    fits.PrimaryHDU(image).writeto(tmp_path / "a.fits")
    png = PIL.Image.open(io.BytesIO(fits_thumbnail(tmp_path / "a.fits")))
    assert png.mode == "P" and png.size == (80, 50)
    index = np.asarray(png)
    # origin at the bottom: FITS row 0 is the last PNG row; missing data has its own colour
    assert index[-1, 0] == N_GREY and (index[:-1, 0] < N_GREY).all()
    assert index[10, 5] < index[10, 40] < index[10, 75]
    # a big image shrinks by an integer block mean, keeping NaN only where a block is empty
    big = np.ones((1000, 730), np.float32)
    big[:3, :3] = np.nan      # one whole 3x3 block
    big[8:11, 8:11] = np.nan  # parts of four blocks
    small = block_reduce_mean(big, 360)
    assert small.shape == (333, 243)
    assert np.isnan(small[0, 0]) and np.isfinite(small).sum() == small.size - 1
    assert np.allclose(small[np.isfinite(small)], 1.0)
    assert PIL.Image.open(io.BytesIO(image_to_png(np.full((5, 5), np.nan)))).size == (5, 5)


def test_fits_without_image_gives_a_note(rundb: RunDB, tmp_path):
    from astropy.io import fits

    run = make_fake_run(rundb, tmp_path / "out")
    fits.PrimaryHDU().writeto(run.run_dir / "mosaics" / "empty.fits")
    _, report = write_report(run.run_dir, rundb, stages=STAGES)
    mosaics = next(s for s in report.sections if s.key == "mosaics")
    assert any(re.match(r"empty\.fits: no thumbnail \(ValueError", n) for n in mosaics.notes)
    assert len(mosaics.figures) == 1
