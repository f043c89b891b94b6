"""load_master keeps the masters read last, up to TGP_MASTER_CACHE_MB, and never serves a stale
one."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty

from tgpcore.calibration import masters
from tgpcore.calibration.masters import load_master
from tgpcore.io.fits import write_ccd


def _write(path, value: float, n: int = 256) -> str:
    data = np.full((n, n), value, np.float32)
    write_ccd(CCDData(data, unit=u.adu, mask=np.zeros(data.shape, bool),
                      uncertainty=StdDevUncertainty(np.ones_like(data))), path)
    return str(path)


@pytest.fixture(autouse=True)
def empty_cache():
    masters._CACHE.clear()  # noqa: SLF001
    yield
    masters._CACHE.clear()  # noqa: SLF001


def test_masters_are_kept_and_read_only(tmp_path):
    paths = [_write(tmp_path / f"m{i}.fits", i) for i in range(6)]
    first = [load_master(p) for p in paths]
    again = [load_master(p) for p in paths]
    assert all(a is b for a, b in zip(first, again, strict=True)), "six masters all kept"
    assert [float(c.data[0, 0]) for c in again] == list(range(6))
    with pytest.raises(ValueError):
        again[0].data[0, 0] = 1.0
    assert load_master(None) is None


def test_a_rewritten_master_is_read_again(tmp_path):
    p = _write(tmp_path / "m.fits", 1.0)
    assert float(load_master(p).data[0, 0]) == 1.0
    time.sleep(0.01)
    _write(tmp_path / "m.fits", 2.0)
    os.utime(p, ns=(time.time_ns(), time.time_ns() + 10**9))  # a coarse clock cannot hide it
    assert float(load_master(p).data[0, 0]) == 2.0


def test_the_cache_is_bounded_by_bytes(tmp_path, monkeypatch):
    # a 256x256 master: data and uncertainty float32, mask bool = 589 824 bytes
    monkeypatch.setenv("TGP_MASTER_CACHE_MB", "1.5")
    paths = [_write(tmp_path / f"m{i}.fits", i) for i in range(4)]
    ccds = [load_master(p) for p in paths]
    assert len(masters._CACHE) == 2  # noqa: SLF001
    assert load_master(paths[3]) is ccds[3]
    assert load_master(paths[0]) is not ccds[0], "the oldest was dropped and is read again"
    monkeypatch.setenv("TGP_MASTER_CACHE_MB", "0")
    load_master(paths[1])
    assert len(masters._CACHE) == 1, "the master just read is always kept"  # noqa: SLF001
