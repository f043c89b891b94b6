"""The compiled combine against the numpy reference (``combine_block``).

Frames with cosmic-ray hits, masked pixels, doubled pixels in pairs, photometric scales and
both weightings. Tolerance: the same pixels used and clipped; means and variances to 1e-6
relative (the reference computes some terms in float32).
"""

from __future__ import annotations

import numpy as np
import pytest

from tgpcore.registration.combine import HAVE_NUMBA, combine_block_compiled
from tgpcore.registration.stack import combine_block


def _block(n, seed):
    rng = np.random.default_rng(seed)
    shape = (n, 40, 50)
    sky = rng.uniform(90, 110, n)
    d = (sky[:, None, None] + rng.normal(0, 5, shape)).astype(np.float32)
    d[:, 10:14, 10:14] += 400.0  # a star in every frame
    hits = rng.uniform(size=shape) < 0.02
    d[hits] += rng.uniform(50, 3000, hits.sum()).astype(np.float32)
    v = np.full(shape, 25.0, np.float32) + np.clip(d - sky[:, None, None], 0, None)
    bad = rng.uniform(size=shape) < 0.03
    d[bad & (rng.uniform(size=shape) < 0.3)] = np.nan
    return d, v.astype(np.float32), bad, sky


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("n", [2, 3, 7])
@pytest.mark.parametrize("frame_weights", [False, True])
@pytest.mark.parametrize("scaled", [False, True])
def test_compiled_matches_numpy(n, frame_weights, scaled):
    d, v, bad, sky = _block(n, 10 * n + frame_weights + 2 * scaled)
    weights = np.linspace(1.0, 2.0, n) if frame_weights else None
    scale = np.linspace(0.9, 1.1, n) if scaled else None
    a = combine_block(d, v, bad, sky, weights, 5.0, 0.1, 3, scale=scale)
    b = combine_block_compiled(d, v, bad, sky, weights, 5.0, 0.1, 3, scale=scale)
    assert (a[2] == b[2]).all() and (a[3] == b[3]).all()
    assert a[3].any()
    np.testing.assert_allclose(b[0], a[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(b[1], a[1], rtol=1e-6, atol=1e-12)
