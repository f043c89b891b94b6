"""ECSV written fast is astropy's ECSV, byte for byte (astropy's ECSV writer is the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, Table

from tgpcore.io.tables import fast_ecsv_ok, write_ecsv, write_table


def _tables():
    rng = np.random.default_rng(3)
    n = 500
    gaia = Table({"source_id": rng.integers(0, 2**62, n, dtype=np.int64),
                  "ra": rng.uniform(0, 360, n) * u.deg,
                  "parallax": MaskedColumn(rng.normal(1, 0.3, n), mask=rng.random(n) < 0.2,
                                           unit=u.mas),
                  "p_member": rng.random(n), "quality_ok": rng.random(n) < 0.5,
                  "flux": rng.lognormal(5, 2, n),
                  "tiny": rng.normal(0, 1e-300, n), "nan": np.full(n, np.nan)})
    gaia["p_member"].description = "membership probability (mixture, with sky term)"
    gaia.meta.update({"status": "ok", "message": "1623 members at p > 0.5",
                      "config": {"cuts": {"g_max": None}, "n_boot": 100}})
    text = Table({"name": ["NGC 2420", "M 67", "x", ""], "filter": ["V", "B", "U", "V"],
                  "n": np.array([1, 2, 3, 4], dtype=np.int16),
                  "m": MaskedColumn([1.5, 2.5, 3.5, 4.5], mask=[True, False, False, True])})
    return {"gaia": gaia, "text": text}


@pytest.mark.parametrize("name", ["gaia", "text"])
def test_fast_ecsv_is_astropys_ecsv_byte_for_byte(tmp_path, name):
    table = _tables()[name]
    assert fast_ecsv_ok(table)
    table.write(tmp_path / "astropy.ecsv", format="ascii.ecsv")
    write_ecsv(table, tmp_path / "fast.ecsv")
    assert (tmp_path / "fast.ecsv").read_bytes() == (tmp_path / "astropy.ecsv").read_bytes()
    back = Table.read(tmp_path / "fast.ecsv", format="ascii.ecsv")
    assert back.meta == table.meta and back.colnames == table.colnames


def test_tables_the_fast_writer_cannot_write_go_through_astropy(tmp_path):
    t = Table({"c": SkyCoord([1, 2], [3, 4], unit="deg"), "v": np.zeros((2, 3))})
    assert not fast_ecsv_ok(t)
    assert not fast_ecsv_ok(Table({"f": np.float32([1.1, 2.2])}))
    write_table(t, tmp_path / "mixin.ecsv")
    back = Table.read(tmp_path / "mixin.ecsv")
    assert back["v"].shape == (2, 3) and np.allclose(back["c"].ra.deg, [1, 2])
    empty = _tables()["gaia"][:0]
    write_table(empty, tmp_path / "empty.ecsv")
    assert len(Table.read(tmp_path / "empty.ecsv")) == 0
