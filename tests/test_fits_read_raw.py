"""tgpcore.io.fits.read_raw scales the stored integers itself: the pixels astropy's own
scaling gives, for every kind of raw data a camera writes, and BLANK as NaN."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from tgpcore.io.fits import read_raw


def _hdu(kind, rng):
    img = rng.normal(30000.0, 400.0, (33, 41))
    if kind == "uint16":                                    # BZERO 32768
        return fits.PrimaryHDU(np.clip(np.round(img * 2), 0, 65535).astype(np.uint16))
    if kind == "int16":
        return fits.PrimaryHDU(np.round(img - 30000).astype(np.int16))
    if kind == "scaled":
        hdu = fits.PrimaryHDU(np.round((img - 10.5) / 2).astype(np.int16))
        hdu.header["BSCALE"], hdu.header["BZERO"] = 2.0, 10.5
        return hdu
    if kind == "int32":
        return fits.PrimaryHDU(np.round(img * 1000).astype(np.int32))
    if kind == "uint8":
        return fits.PrimaryHDU(np.clip(img / 200, 0, 255).astype(np.uint8))
    return fits.PrimaryHDU(img.astype(np.float32 if kind == "float32" else np.float64))


@pytest.mark.parametrize("kind", ["uint16", "int16", "scaled", "int32", "uint8", "float32",
                                  "float64"])
def test_pixels_are_astropys(tmp_path, kind):
    path = tmp_path / f"{kind}.fits"
    _hdu(kind, np.random.default_rng(1)).writeto(path)
    data, header = read_raw(path)
    assert data.dtype == np.float32 and data.shape == (33, 41)
    np.testing.assert_array_equal(data, fits.getdata(path).astype(np.float32))
    assert header["NAXIS1"] == 41


def test_blank_pixels_are_nan_and_a_cube_is_refused(tmp_path):
    raw = np.full((10, 12), 7, np.int16)
    raw[3, 4] = -32768
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BLANK"] = -32768
    hdu.header["BZERO"] = 32768            # unsigned data with a BLANK value
    hdu.writeto(tmp_path / "blank.fits")
    data, _ = read_raw(tmp_path / "blank.fits")
    assert np.isnan(data[3, 4]) and np.isnan(data).sum() == 1
    assert data[0, 0] == 7 + 32768
    fits.PrimaryHDU(np.zeros((2, 3, 4), np.float32)).writeto(tmp_path / "cube.fits")
    with pytest.raises(ValueError, match="cube.fits.*not a 2-D image"):
        read_raw(tmp_path / "cube.fits")
    fits.PrimaryHDU().writeto(tmp_path / "empty.fits")
    with pytest.raises(ValueError, match="empty.fits.*no data"):
        read_raw(tmp_path / "empty.fits")
