"""tgpcore.robust: np.median's and astropy's mad_std's values, bit for bit, whatever the data
(the bracketing sample missing the median included)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import mad_std as astropy_mad_std

from tgpcore import robust
from tgpcore.robust import mad_std, median


def _data(kind, n, rng):
    if kind == "normal":
        return rng.normal(1.0, 0.01, n)
    if kind == "integers":                      # heavy ties
        return rng.integers(0, 5, n).astype(float)
    if kind == "skewed":
        return rng.exponential(1.0, n) ** 3
    if kind == "constant":
        return np.full(n, 2.5)
    if kind == "image":                         # a gradient and stars, row by row
        y = np.linspace(0, 1, n)
        out = 100 + 20 * y + rng.normal(0, 1, n)
        out[rng.integers(0, n, n // 50)] += rng.exponential(500, n // 50)
        return out
    # adversarial: every sampled value (every n // 20000-th) far above the rest
    out = rng.normal(0.0, 1.0, n)
    out[::max(1, n // robust._SAMPLE)] = 1e6
    return out


@pytest.mark.parametrize("kind", ["normal", "integers", "skewed", "constant", "image",
                                  "adversarial"])
@pytest.mark.parametrize("n", [1000, 250_000, 250_001, 1_048_576 + 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_and_mad_std_are_numpy_and_astropy(kind, n, dtype):
    x = _data(kind, n, np.random.default_rng(n)).astype(dtype)
    got, want = median(x), np.median(x)
    assert got == want and np.asarray(got).dtype == np.asarray(want).dtype
    assert mad_std(x) == astropy_mad_std(x)


def test_images_and_non_finite_values():
    rng = np.random.default_rng(4)
    img = rng.normal(500.0, 10.0, (700, 600)).astype(np.float32)
    assert median(img) == np.median(img)
    img[3, 4] = np.nan                          # missed by the sample: still np.median's NaN
    assert np.isnan(median(img)) and np.isnan(np.median(img))
    img[3, 4] = np.inf
    assert median(img) == np.median(img)
    assert median(np.arange(300_001)) == np.median(np.arange(300_001))    # integers
