"""grow_mask is scipy's one-pixel binary dilation (cross or 3x3), edges included."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tgpcore.calibration.morphology import grow_mask


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
