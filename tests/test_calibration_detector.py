"""Overscan and trim of tgpcore.calibration.detector against ccdproc (the oracle):
``subtract_overscan(median=True, model=Polynomial1D(0))`` then ``trim_image``."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.modeling.models import Polynomial1D
from astropy.nddata import CCDData

from tgpcore.calibration.detector import DetectorSetup, prepare

ccdproc = pytest.importorskip("ccdproc")


def _raw_frame(seed: int) -> np.ndarray:
    """A raw 2048 x 2080 frame (ADU, float32 as read_raw gives it): a 1012 ADU level drifting
    by 2 ADU down the rows, 3.2 ADU read noise, sky and stars in the image area, a 32-column
    overscan with a hot column and cosmic rays in it."""
    rng = np.random.default_rng(seed)
    ny, nx, nover = 2048, 2048, 32
    raw = np.empty((ny, nx + nover), np.float32)
    level = 1012.0 + np.linspace(0.0, 2.0, ny)[:, None]
    raw[:] = level + rng.normal(0.0, 3.2, raw.shape)
    raw[:, :nx] += 350.0 + rng.gamma(0.3, 400.0, (ny, nx))
    raw[:, nx + 7] += 40.0                                         # a hot overscan column
    hits = rng.integers(0, ny, 60)
    raw[hits, nx + rng.integers(0, nover, 60)] += rng.uniform(100, 5000, 60)
    return raw


def _fits_section(s):
    return f"[{s[0]}:{s[1]},{s[2]}:{s[3]}]"


@pytest.mark.parametrize("seed", [1, 2])
def test_prepare_is_ccdproc_subtract_overscan_and_trim(seed):
    """The level agrees with ccdproc's to 1e-4 ADU (ours averages the row medians in float32,
    ccdproc fits them in float64): 3e-5 of the read noise. The pixels agree to that plus the
    rounding of ours to float32 (ccdproc returns float64): 2^-23 of the value."""
    raw = _raw_frame(seed)
    setup = DetectorSetup(1.4, 4.5, 65535.0, overscan=(2049, 2080, 1, 2048),
                          trim=(1, 2048, 1, 2048))
    data, saturated, level = prepare(raw.copy(), setup)
    ccd = ccdproc.subtract_overscan(CCDData(raw, unit="adu"),
                                    fits_section=_fits_section(setup.overscan), median=True,
                                    overscan_axis=1, model=Polynomial1D(0))
    ref = ccdproc.trim_image(ccd, fits_section=_fits_section(setup.trim))
    assert data.shape == ref.data.shape == (2048, 2048)
    assert abs(level - float(raw[0, 0] - ccd.data[0, 0])) < 1e-4
    np.testing.assert_allclose(data, ref.data, rtol=2.0**-23, atol=1e-4)
    assert not saturated.any()
