"""The packaged PARSEC grid reader and the internal isochrone form."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from numpy.testing import assert_allclose

from tgpcore.isochrones import (
    PARAMETER_COLUMNS,
    STANDARD_BANDS,
    IsochroneGrid,
    extinction_ratios,
    load_packaged_grid,
    packaged_grid_path,
)


@pytest.fixture(scope="module")
def grid() -> IsochroneGrid:
    return load_packaged_grid()


def test_packaged_grid_file_exists():
    assert packaged_grid_path().name == "parsec_grid.fits.gz" and packaged_grid_path().exists()


def test_grid_ranges_and_columns(grid):
    ages, mhs = grid.ages(), grid.metallicities()
    assert_allclose([ages.min(), ages.max()], [6.0, 10.2], atol=1e-9)
    assert_allclose([mhs.min(), mhs.max()], [-2.2, 0.3], atol=0.01)  # -2.19174 .. 0.30
    assert len(ages) == 36 and len(mhs) == 11
    assert_allclose(np.diff(ages), 0.12, atol=1e-9)
    for col in PARAMETER_COLUMNS:
        assert col in grid.table.colnames
    assert grid.bands == STANDARD_BANDS
    assert grid.table["U"].unit == "mag" and grid.table["label"].dtype.kind == "i"
    assert len(grid) == 132839


def test_nearest_isochrone_is_sorted_and_sensible(grid):
    iso = grid.isochrone(8.6, 0.0)
    assert (iso.meta["logAge"], iso.meta["MH"]) == (8.64, 0.05)
    assert iso.meta["method"] == "nearest grid node"
    assert np.all(iso["logAge"] == 8.64) and np.all(iso["MH"] == 0.05)
    assert np.all(np.diff(iso["Mini"]) >= 0)
    # main sequence: brighter in V and bluer in B-V with mass; turn-off of a 440 Myr
    # solar-metallicity population near 2.8 Msun
    ms = iso[iso["label"] == 1]
    assert np.all(np.diff(ms["V"][ms["Mini"] < 2.0]) < 0)
    assert 2.5 < iso["Mini"][iso["label"] >= 2][0] < 3.2
    sun = np.interp(1.0, ms["Mini"], ms["V"])
    assert 4.0 < sun < 5.5  # M_V of a 1 Msun dwarf
    assert grid.nearest(100.0, -9.0) == (10.2, float(grid.metallicities()[0]))


def test_second_load_is_cached_and_private(grid):
    again = load_packaged_grid()
    again.table["V"][0] = 99.0
    assert grid.table["V"][0] != 99.0
    assert load_packaged_grid().table["V"][0] != 99.0


def test_grid_accepts_any_table_in_internal_form():
    t = Table({"logAge": [9.0, 9.0, 8.0], "MH": [0.0, 0.0, 0.0], "Zini": [0.0152] * 3,
               "Mini": [1.0, 0.5, 1.0], "Mass": [1.0, 0.5, 1.0], "label": [1, 1, 1],
               "V": [4.8, 8.0, 4.7]})
    g = IsochroneGrid(t, source="test")
    assert list(g.ages()) == [8.0, 9.0] and g.bands == ("V",)
    assert list(g.isochrone(9.1, 0.0)["Mini"]) == [0.5, 1.0]
    with pytest.raises(ValueError):
        IsochroneGrid(Table({"logAge": [9.0], "V": [1.0]}))


def test_extinction_ratios_cover_all_standard_bands():
    r = extinction_ratios()
    assert set(STANDARD_BANDS) <= set(r)
    # longer wavelength, less extinction
    assert r["U"] > r["B"] > r["V"] > r["R"] > r["I"] > r["J"] > r["H"] > r["K"]
    assert_allclose(r["U"] - r["B"], 0.72, atol=0.02)  # E(U-B)/E(B-V) = 0.719
    with pytest.raises(KeyError):
        extinction_ratios(["X"])


# --- HDF5 library and its cache -----------------------------------------------------------

def test_hdf5_round_trip_and_cache(tmp_path):
    import time

    from tgpcore.isochrones import load_grid, read_grid_hdf5, write_grid_hdf5

    first = load_grid(cache_dir=tmp_path)
    assert first.table.meta["cache_hit"] is False
    cached = list(tmp_path.glob("isochrones-packaged-*.h5"))
    assert len(cached) == 1 and not list(tmp_path.glob(".*part*"))  # atomic: no leftovers
    t0 = time.perf_counter()
    again = load_grid(cache_dir=tmp_path)
    load_s = time.perf_counter() - t0
    assert again.table.meta["cache_hit"] is True
    assert load_s < 1.0, f"cached packaged grid took {load_s:.2f} s (limit 1 s)"
    assert len(again) == len(first) and again.bands == first.bands
    assert again.source == first.source
    for col in ("logAge", "MH", "Mini", "label", "V", "G_BP"):
        assert np.array_equal(np.asarray(again.table[col]), np.asarray(first.table[col]))
    assert again.table["label"].dtype == np.int16 and str(again.table["V"].unit) == "mag"
    # an explicit library file
    out = write_grid_hdf5(first, tmp_path / "lib.h5")
    assert len(read_grid_hdf5(out)) == len(first)
    assert len(load_grid(out)) == len(first)
    with pytest.raises(ValueError, match="not an isochrone HDF5"):
        bad = tmp_path / "bad.h5"
        bad.write_bytes(b"not hdf5")
        read_grid_hdf5(bad)


def test_cache_key_follows_source_checksums(tmp_path):
    from tgpcore.isochrones import load_grid, uwastro_cmd37_path

    src = tmp_path / "iso.dat"
    with open(uwastro_cmd37_path()) as fh:
        lines = [next(fh) for _ in range(300)]
    # keep the first isochrone block (ends before the second '# Zini' header)
    end = next(i for i, line in enumerate(lines) if i > 14 and "Zini" in line)
    block = lines[:end] + ["#isochrone terminated\n"]
    src.write_text("".join(block))
    cache = tmp_path / "cache"
    g1 = load_grid(src, cache_dir=cache)
    assert not g1.table.meta["cache_hit"]
    assert load_grid(src, cache_dir=cache).table.meta["cache_hit"]
    # same name, new content: a new cache entry, not the stale one
    src.write_text("".join(block[:-2] + ["#isochrone terminated\n"]))
    g3 = load_grid(src, cache_dir=cache)
    assert not g3.table.meta["cache_hit"] and len(g3) == len(g1) - 1
    assert len(list(cache.glob("*.h5"))) == 2
