"""grow_mask is scipy's one-pixel binary dilation (cross or 3x3), edges included; label_pixels
is its 8-connected labelling of a few pixels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tgpcore.calibration.cosmics import count_groups
from tgpcore.calibration.morphology import grow_mask, label_pixels


@pytest.mark.parametrize("seed", range(5))
def test_grow_mask_is_binary_dilation(seed):
    rng = np.random.default_rng(seed)
    m = rng.random((37, 53)) < 0.05
    m[0, 5] = m[-1, -1] = m[10, 0] = True  # on the edges and in a corner
    assert np.array_equal(grow_mask(m, 4), ndimage.binary_dilation(m))
    assert np.array_equal(grow_mask(m, 8), ndimage.binary_dilation(m, np.ones((3, 3), bool)))
    assert not grow_mask(np.zeros((4, 4), bool)).any()
    with pytest.raises(ValueError, match="connectivity"):
        grow_mask(m, 6)


@pytest.mark.parametrize("seed", range(40))
def test_label_pixels_is_ndimage_label_8_connected(seed):
    """Same groups, numbered alike, whatever the density; no group wraps round a row's end."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 30)), int(rng.integers(1, 30)))
    m = rng.random(shape) < rng.uniform(0.0, 0.6)
    m[:, -1] |= rng.random(shape[0]) < 0.5  # pixels at a row's end next to the next row's start
    m[:, 0] |= rng.random(shape[0]) < 0.5
    ref, n = ndimage.label(m, structure=np.ones((3, 3), bool))
    idx = np.flatnonzero(m)
    lab, n2 = label_pixels(idx, shape)
    assert n2 == n
    np.testing.assert_array_equal(lab, ref.ravel()[idx])
    assert count_groups(m) == n


def test_label_pixels_of_nothing():
    lab, n = label_pixels(np.array([], np.int64), (5, 5))
    assert n == 0 and lab.size == 0
