"""Masters read their members a band of rows at a time (tgpcore.calibration.members).

The banded reading must give exactly what reading each member whole gave: the same pixels
(BSCALE/BZERO/BLANK applied, overscan subtracted, trimmed), the same master bitwise, the same
noise figure, and the same errors naming the file.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from tgpcore.calibration import members as members_mod
from tgpcore.calibration.combine import clipped_mean
from tgpcore.calibration.detector import DetectorSetup, prepare
from tgpcore.calibration.masters import (
    CalibrationError,
    FrameInput,
    build_master_bias,
    build_master_dark,
    build_master_flat,
)
from tgpcore.calibration.members import Members
from tgpcore.io.fits import read_raw

NY, NX = 77, 60  # raw; 70 x 52 after trim: bands never divide it evenly
SETUP = DetectorSetup(gain_e_per_adu=1.7, read_noise_e=5.0, saturation_adu=60000,
                      overscan=(55, 60, 1, 77), trim=(2, 53, 4, 73))


def _write(path, data, **cards):
    hdu = fits.PrimaryHDU(data)
    for k, v in cards.items():
        hdu.header[k] = v
    hdu.writeto(path)
    return str(path)


def _frames(tmp_path, n, level=1000.0, exptime=0.0, dtype="uint16", seed=0, name="f"):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = rng.normal(level, 3.0, (NY, NX))           # the read noise, 2.9 ADU
        img[:, 54:] = rng.normal(300.0, 3.0, (NY, 6))   # overscan
        if dtype == "uint16":
            hdu = fits.PrimaryHDU(np.round(img).astype(np.uint16))   # BZERO 32768
        elif dtype == "scaled":
            hdu = fits.PrimaryHDU(np.round((img - 10.5) / 2).astype(np.int16))
            hdu.header["BSCALE"], hdu.header["BZERO"] = 2.0, 10.5
        else:
            hdu = fits.PrimaryHDU(img.astype(np.float32))
        path = tmp_path / f"{name}{i}.fits"
        hdu.writeto(path)
        out.append(FrameInput(str(path), 0, exptime, {}))
    return out


@pytest.fixture
def small_bands(monkeypatch):
    """Bands of 8 rows (the smallest), so that a 70-row image takes 9 of them."""
    monkeypatch.setattr(members_mod, "BAND_BYTES", 1)


@pytest.mark.parametrize("dtype", ["uint16", "scaled", "float32"])
def test_bands_are_read_raw_then_prepare(tmp_path, small_bands, dtype):
    frames = _frames(tmp_path, 3, dtype=dtype)
    with Members([f.path for f in frames], [0] * 3, SETUP) as m:
        assert m.shape == (70, 52)
        for i, f in enumerate(frames):
            want, _, level = prepare(read_raw(f.path)[0], SETUP)
            assert m.levels[i] == level
            got = np.empty(m.shape, np.float32)
            for r0, r1 in m.bands():
                m.band(i, r0, r1, got[r0:r1])
            np.testing.assert_array_equal(got, want)
            idx = np.arange(0, want.size, 23)
            np.testing.assert_array_equal(m.pixels(i, idx), want.ravel()[idx])


def test_bias_master_is_the_whole_stack_combined(tmp_path, small_bands):
    """The banded master bias equals the clipped mean of the whole stack, bit for bit, clipped
    against the noise measured from the frames' differences before any rejection (the
    frames' noise is 3 ADU; the header says 5 e- / 1.5 = 3.3 ADU)."""
    frames = _frames(tmp_path, 5)
    stack = np.array([prepare(read_raw(f.path)[0], SETUP)[0] for f in frames])
    res = build_master_bias(frames, SETUP)
    sigma = np.float32(res.qc["noise_adu"])
    mean, n_used = clipped_mean(stack, noise_model=lambda med: sigma)
    np.testing.assert_array_equal(res.ccd.data, mean)
    np.testing.assert_array_equal(res.ccd.mask, n_used == 0)
    assert res.qc["noise_adu"] == pytest.approx(3.0, rel=0.1)  # 4 pairs of 16 x 60 pixels
    h = res.ccd.header
    assert h["RNHDR"] == SETUP.read_noise_e
    assert h["RNUSED"] == pytest.approx(res.qc["noise_adu"] * SETUP.gain_e_per_adu)


def test_dark_and_flat_masters_as_whole_stacks(tmp_path, small_bands):
    """Dark (e-/s) and flat (normalised) masters equal the whole-stack arithmetic."""
    biases = _frames(tmp_path, 4, level=1000.0, name="b")
    darks = _frames(tmp_path, 3, level=1100.0, exptime=100.0, seed=1, name="d")
    flats = _frames(tmp_path, 4, level=20000.0, exptime=2.0, seed=2, name="fl")
    bias = build_master_bias(biases, SETUP).ccd
    dark = build_master_dark(darks, SETUP, bias).ccd
    flat = build_master_flat(flats, SETUP, bias, dark).ccd

    def stack(frames):
        return np.array([prepare(read_raw(f.path)[0], SETUP)[0] for f in frames])

    g = np.float32(SETUP.gain_e_per_adu)
    rn2 = np.float32(SETUP.read_noise_e ** 2)
    t = np.full((3, 1, 1), 100.0, np.float32)
    rate = stack(darks)
    rate -= bias.data.astype(np.float32)[None]
    rate *= g
    rate /= t
    k = np.float32(dark.header.get("NOISEUSE", 1.0))   # the measured scatter, where off
    want, _ = clipped_mean(rate, noise_model=lambda med: np.sqrt(rn2 + np.maximum(med, 0)[None]
                                                                  * t) / t * k)
    np.testing.assert_array_equal(dark.data, np.nan_to_num(want))
    e = stack(flats)
    e -= bias.data.astype(np.float32)[None]
    e *= g
    for x in e:
        x -= dark.data.astype(np.float32) * np.float32(2.0)
    levels = np.array([np.median(x.ravel()[::23]) for x in e], dtype=float)
    assert flat.header["FLATLVL"] == pytest.approx(levels.mean(), rel=1e-9)
    lv = levels[:, None, None].astype(np.float32)
    e /= lv
    k = np.float32(flat.header.get("NOISEUSE", 1.0))
    want, _ = clipped_mean(e, noise_model=lambda med: np.sqrt(np.maximum(med, 0)[None] * lv
                                                              + rn2) / lv * k)
    want = np.nan_to_num(want, nan=1.0)
    np.testing.assert_array_equal(flat.data, (want / float(np.median(want))).astype(np.float32))
    assert np.median(flat.data) == pytest.approx(1.0, abs=1e-6)


def test_member_errors_name_the_file(tmp_path):
    frames = _frames(tmp_path, 2)
    odd = _write(tmp_path / "odd.fits", np.zeros((NY + 1, NX), np.float32))
    with pytest.raises(CalibrationError, match=r"odd\.fits: raw shape \(78, 60\) differs from the other members' \(77, 60\)"):
        build_master_bias([*frames, FrameInput(odd, 0, 0.0, {})], SETUP)
    bad = np.full((NY, NX), 1000.0, np.float32)
    bad[40, 10] = np.nan
    nan = _write(tmp_path / "nan.fits", bad)
    with pytest.raises(CalibrationError, match=r"nan\.fits: 1 non-finite pixels"):
        build_master_bias([*frames, FrameInput(nan, 0, 0.0, {})], SETUP)
    blank = np.full((NY, NX), 1000, np.int16)
    blank[50, 20] = -999
    blanked = _write(tmp_path / "blank.fits", blank, BLANK=-999)
    with pytest.raises(CalibrationError, match=r"blank\.fits: 1 non-finite pixels"):
        build_master_bias([*frames, FrameInput(blanked, 0, 0.0, {})], SETUP)
    cube = _write(tmp_path / "cube.fits", np.zeros((2, NY, NX), np.float32))
    with pytest.raises(CalibrationError, match=r"cube\.fits: HDU 0 is not a 2-D image"):
        build_master_bias([*frames, FrameInput(cube, 0, 0.0, {})], SETUP)


def test_band_memory_does_not_grow_with_the_members(tmp_path):
    """A band of every member stays within BAND_BYTES down to 8 rows: 100 flats of 2048
    columns take 6.6 MB of band, where a whole stack of them took 1.7 GB."""
    frames = _frames(tmp_path, 2)
    with Members([f.path for f in frames], [0, 0], SETUP) as m:
        m.paths = m.paths * 50              # as if 100 members
        m.shape = (2048, 2048)
        assert m.band_rows() * 100 * 2048 * 4 <= max(members_mod.BAND_BYTES,
                                                      8 * 100 * 2048 * 4)
        assert 8 <= m.band_rows() <= 128


def test_threads_build_the_same_masters(tmp_path, small_bands):
    """Bands shared between threads give the same masters, bit for bit (the master bias is
    built with every worker's core while nothing else can run)."""
    biases = _frames(tmp_path, 4, level=1000.0, name="b")
    darks = _frames(tmp_path, 3, level=1100.0, exptime=100.0, seed=1, name="d")
    flats = _frames(tmp_path, 4, level=20000.0, exptime=2.0, seed=2, name="fl")
    one = build_master_bias(biases, SETUP)
    two = build_master_bias(biases, SETUP, threads=3)
    np.testing.assert_array_equal(one.ccd.data, two.ccd.data)
    np.testing.assert_array_equal(one.ccd.uncertainty.array, two.ccd.uncertainty.array)
    assert one.qc == two.qc
    for build, args in ((build_master_dark, (darks, SETUP, one.ccd)),
                        (build_master_flat, (flats, SETUP, one.ccd))):
        a, b = build(*args), build(*args, threads=2)
        np.testing.assert_array_equal(a.ccd.data, b.ccd.data)
        np.testing.assert_array_equal(a.ccd.mask, b.ccd.mask)


def test_a_bad_member_fails_a_threaded_master_too(tmp_path, small_bands):
    frames = _frames(tmp_path, 2)
    bad = np.full((NY, NX), 1000.0, np.float32)
    bad[60, 10] = np.inf
    path = _write(tmp_path / "inf.fits", bad)
    with pytest.raises(CalibrationError, match=r"inf\.fits: 1 non-finite pixels"):
        build_master_bias([*frames, FrameInput(path, 0, 0.0, {})], SETUP, threads=2)
