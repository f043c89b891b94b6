"""The compiled resampling (numba) against the scipy reference implementation.

Tolerance: identical masks and data, variances to one float32 ulp (1e-6 relative), for
shifts, small rotations and a non-square output grid, with masked and non-finite pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

from tgpcore.registration.resample import HAVE_NUMBA, warp_compiled, warp_scipy


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("matrix", [
    [[1, 0, 3], [0, 1, -2], [0, 0, 1]],
    [[1, 0.001, 3.3], [-0.001, 1, -2.7], [0, 0, 1]],
    [[0.9998, 0.02, -13.3], [-0.02, 0.9998, 22.7], [0, 0, 1]],
])
def test_compiled_matches_scipy(matrix):
    rng = np.random.default_rng(2)
    d = rng.normal(100, 5, (120, 150)).astype(np.float32)
    v = rng.uniform(1, 2, d.shape).astype(np.float32)
    m = rng.uniform(size=d.shape) < 0.01
    d[5, 7] = np.nan
    a = warp_scipy(d, v, m, np.asarray(matrix, float), (110, 170))
    b = warp_compiled(d, v, m, np.asarray(matrix, float), (110, 170))
    assert (a[2] == b[2]).all()
    ok = ~a[2]
    np.testing.assert_array_equal(a[0][ok], b[0][ok])
    np.testing.assert_allclose(b[1][ok], a[1][ok], rtol=1e-6)
