"""Faults at the edges: a full disk while a product is written, and path parameters that try
to write outside the output root."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from flows.full_run import FullRunParams
from flows.guard import check_inside
from flows.service import guarded
from tgpcore.io.atomic import DiskFullError, atomic_write_bytes
from tgpcore.io.fits import read_ccd, write_ccd


def _ccd(value: float) -> CCDData:
    data = np.full((64, 64), value, np.float32)
    return CCDData(data, unit=u.electron, uncertainty=StdDevUncertainty(np.ones_like(data)),
                   mask=np.zeros(data.shape, bool))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_disk_full_while_writing_a_fits_product(tmp_path, monkeypatch, code):
    final = tmp_path / "calibrated" / "sim_0001.fits"
    write_ccd(_ccd(1.0), final)  # the product of an earlier run, to be replaced
    before = final.read_bytes()
    real_writeto = fits.HDUList.writeto

    def filling_up(self, name, *args, **kwargs):
        """Write the first half of the file, then fail as a full disk does."""
        buf = io.BytesIO()
        real_writeto(self, buf)
        with open(name, "wb") as fh:
            fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise OSError(code, "No space left on device")

    monkeypatch.setattr(fits.HDUList, "writeto", filling_up)
    with pytest.raises(DiskFullError) as info:
        write_ccd(_ccd(2.0), final)
    message = str(info.value)
    assert info.value.errno == code and isinstance(info.value, OSError)
    assert f"while writing {final}" in message and "MB free" in message
    assert "no partial file was left" in message
    assert ("quota" in message) == (code == errno.EDQUOT)
    monkeypatch.undo()
    # the old product is untouched and whole; no temporary file is left behind
    assert final.read_bytes() == before
    assert float(read_ccd(final).data.mean()) == 1.0
    assert _leftovers(final.parent) == []


def test_disk_full_on_a_new_product_leaves_nothing(tmp_path, monkeypatch):
    final = tmp_path / "report.html"

    def filling_up(self, data):
        Path.write_text(self, "<html>half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", filling_up)
    with pytest.raises(DiskFullError, match=r"disk full while writing .*report\.html"):
        atomic_write_bytes(final, b"<html>whole</html>")
    assert not final.exists() and _leftovers(tmp_path) == []


def test_other_write_errors_are_not_called_disk_full(tmp_path, monkeypatch):
    def denied(self, data):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "write_bytes", denied)
    with pytest.raises(PermissionError) as info:
        atomic_write_bytes(tmp_path / "x.bin", b"x")
    assert not isinstance(info.value, DiskFullError)
    assert _leftovers(tmp_path) == []


def test_ui_path_parameters_stay_inside_the_output_root(tmp_path, monkeypatch):
    root = tmp_path / "out"
    root.mkdir()
    (root / "escape").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    monkeypatch.setenv("TGP_OUT_ROOT", str(root))
    monkeypatch.setenv("TGP_DATA_ROOT", "/data")
    ok = guarded(FullRunParams(data="/data/night", out=str(root / "sub")))
    assert ok.out == str(root / "sub")
    assert guarded(FullRunParams(data="/data/night", out=str(root))).out == str(root)
    for bad in ("/etc", str(root / ".." / "x"), str(root / "escape" / "x"), str(tmp_path),
                str(root) + "-sibling", "relative/out"):
        with pytest.raises(ValueError, match="'out' .* outside the output root"):
            guarded(FullRunParams(data="/data/night", out=bad))
    assert check_inside(root / "a" / ".." / "b", root) == root / "b"


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    import os
    import time

    from tgpcore.io.atomic import is_temporary, remove_stale_temporaries

    old = tmp_path / "run" / "stacks" / ".SA98_p0_V.x1y2.part.fits"
    fresh = tmp_path / "run" / "stacks" / ".SA98_p0_B.a1b2.part.fits"
    product = tmp_path / "run" / "stacks" / "SA98_p0_V.fits"
    for p in (old, fresh, product):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    past = time.time() - 3 * 86400
    os.utime(old, (past, past))
    os.utime(product, (past, past))
    assert is_temporary(old) and not is_temporary(product)
    assert remove_stale_temporaries(tmp_path) == [old]
    assert fresh.exists() and product.exists() and not old.exists()


def test_opening_a_run_removes_stale_temporaries(tmp_path, monkeypatch):
    """Every run starts by clearing the day-old temporaries of killed writers under its output
    root; a fresh one (another run at work) stays."""
    import os
    import time

    from flows.session import open_session

    monkeypatch.delenv("TGP_DATABASE_URL", raising=False)
    out = tmp_path / "out"
    old = out / "20260101T000000-abcdef" / "calibrated" / ".sim_0001.k3j2.part.fits"
    fresh = out / "20260101T000000-abcdef" / "calibrated" / ".sim_0002.k3j2.part.fits"
    for p in (old, fresh):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    past = time.time() - 2 * 86400
    os.utime(old, (past, past))
    session = open_session(tmp_path / "raw", out, None, {})
    assert session.run_dir.is_dir()
    assert not old.exists() and fresh.exists()


@pytest.mark.parametrize("setting, flushes", [("", 0), ("1", 1)])
def test_products_are_flushed_to_disk_only_with_tgp_fsync(tmp_path, monkeypatch, setting,
                                                          flushes):
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    monkeypatch.setenv("TGP_FSYNC", setting)
    final = write_ccd(_ccd(3.0), tmp_path / "sim_0002.fits")
    assert len(calls) == flushes
    assert float(read_ccd(final).data.mean()) == 3.0 and _leftovers(tmp_path) == []


def test_a_full_disk_is_recognised_whatever_raised_it(tmp_path, monkeypatch):
    """astropy's "Not enough space on disk" carries no errno, SQLite says "database or disk is
    full": both are a full disk, named with the product's path; other errors are not."""
    from tgpcore.io.atomic import is_disk_full

    assert is_disk_full(OSError("Not enough space on disk: requested 4194304, available 0"))
    assert is_disk_full(RuntimeError("(sqlite3.OperationalError) database or disk is full"))
    assert is_disk_full(OSError("65536 requested and 36864 written"))   # numpy tofile
    assert not is_disk_full(OSError("Header missing END card."))
    final = tmp_path / "calibrated" / "x.fits"

    def astropy_like(self, name, *args, **kwargs):
        raise OSError("Not enough space on disk: requested 16777216, available 4096")

    monkeypatch.setattr(fits.HDUList, "writeto", astropy_like)
    with pytest.raises(DiskFullError, match=r"disk full while writing .*x\.fits"):
        write_ccd(_ccd(1.0), final)
    assert not final.exists() and not _leftovers(final.parent)


def test_a_full_disk_fails_the_frame_task_instead_of_rejecting_the_frame(tmp_path,
                                                                         monkeypatch):
    """Calibrating onto a full disk raises (the stage fails, with the product's path); the raw
    frame is not called bad. A frame that is bad is still rejected with its reason."""
    from tgpcore.calibration.products import make_calibrated
    from tgpcore.simulate import simulate_night

    from _calibrated import build_masters, frame_input

    nt = simulate_night(tmp_path / "night", preset="tiny", seed=1)
    inv, plan, masters = build_masters(nt.raw_dir, tmp_path / "out")
    recs = {r.path: r for r in inv.records}
    e = next(e for e in plan.entries if e.status == "ok")
    args = (frame_input(recs[e.path]), str(tmp_path / "out" / "calibrated" / "f.fits"),
            masters.get(e.bias_key), masters.get(e.dark_key), masters.get(e.flat_key))

    def full(self, name, *a, **k):
        raise OSError("Not enough space on disk: requested 1, available 0")

    with monkeypatch.context() as m:
        m.setattr(fits.HDUList, "writeto", full)
        with pytest.raises(DiskFullError, match="f.fits"):
            make_calibrated(*args)
    bad = dict(args[0], path=str(tmp_path / "not-a-frame.fits"))
    Path(bad["path"]).write_text("this is not FITS")
    res = make_calibrated(bad, *args[1:])
    assert res["status"] == "rejected" and "not-a-frame.fits" in res["reason"]
