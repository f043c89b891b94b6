"""The night report renders in a real browser (headless Chromium): every image loads, and the
page paints.

Needs the Debian package ``chromium`` (packaging/debian-packages.txt). Without it the test
skips, unless ``CI`` or ``TGP_REQUIRE_CHROMIUM=1`` is set, when it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from _reportrun import STAGES, make_fake_run

from tgpcore.report import write_report
from tgpcore.rundb import RunDB, open_db

CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                .map(function (i) { return i.alt; });
  var pre = document.createElement('pre');
  pre.id = 'tgp-image-check';
  pre.textContent = JSON.stringify({total: imgs.length, bad: bad});
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI") or os.environ.get("TGP_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return exe


def _run_chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


def _image_check(exe: str, page: Path, profile: Path) -> dict:
    """Open a copy of ``page`` with the check script and return what it recorded."""
    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(page.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    proc = _run_chromium(exe, profile, "--virtual-time-budget=15000", "--dump-dom",
                         probe.as_uri())
    m = re.search(r'<pre id="tgp-image-check">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the check script did not run: rc={proc.returncode} {proc.stderr[-2000:]}"
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.slow
def test_report_renders_in_chromium_with_every_image(tmp_path):
    exe = _chromium()
    engine = open_db(f"sqlite:///{tmp_path / 'tgp-runs.sqlite'}")
    rundb = RunDB(engine)
    run = make_fake_run(rundb, tmp_path / "out")
    page, report = write_report(run.run_dir, rundb, stages=STAGES)
    engine.dispose()
    n_images = len(report.figures())
    assert n_images == run.images + run.pngs

    result = _image_check(exe, page, tmp_path / "profile")
    assert result == {"total": n_images, "bad": []}

    # the check can fail: an image that does not decode is caught
    broken = page.with_name("broken.html")
    broken.write_text(page.read_text().replace(
        "</main>", '<img alt="broken-one" src="data:image/png;base64,AAAA"></main>'))
    result = _image_check(exe, broken, tmp_path / "profile")
    assert result == {"total": n_images + 1, "bad": ["broken-one"]}

    shot = tmp_path / "report.png"
    proc = _run_chromium(exe, tmp_path / "profile", "--window-size=1280,2400",
                         f"--screenshot={shot}", page.as_uri())
    assert shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(PIL.Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2400, 1280)
    # painted: the dark header band on top, a light page, and grey thumbnails below
    assert pixels[:40].mean() < 100 and np.median(pixels) > 200 and pixels.std() > 20
