"""The stack median of tgpcore.calibration.combine: a selection network up to _NETWORK_MAX
frames, sorting beyond; both np.median's values, bit for bit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tgpcore.calibration import combine
from tgpcore.calibration.combine import _median0, clipped_mean, median_network


@pytest.mark.parametrize("n", range(1, 15))
def test_network_median_of_every_zero_one_input(n):
    """A comparator network computes an order statistic of every input if it does for every
    input of 0s and 1s (the zero-one principle): all 2^n of them."""
    bits = np.array(list(itertools.product([0.0, 1.0], repeat=n)), np.float32)
    block = np.ascontiguousarray(bits.T).reshape(n, 1, -1)
    np.testing.assert_array_equal(_median0(block), np.median(block, axis=0))


@pytest.mark.parametrize("n", [1, 2, 3, 6, 10, 15, 16, 31, 48, 49, 80])
def test_median_is_numpys_bit_for_bit(n):
    """Random values with ties, on both sides of the network's limit (49 and 80 frames are
    sorted); the block is left as it was."""
    rng = np.random.default_rng(n)
    block = rng.normal(100.0, 5.0, (n, 9, 40)).astype(np.float32)
    block[:, 0] = np.round(block[:, 0])              # ties
    keep = block.copy()
    got = _median0(block)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.median(block, axis=0))
    np.testing.assert_array_equal(block, keep)


def test_network_is_pruned_and_small():
    """Fewer comparators than the sort it comes from; 15 frames: 49."""
    assert len(median_network(15)) == 49
    assert len(median_network(5)) <= 9
    assert median_network(1) == ()
    for n in (7, 15, 48):
        assert len(median_network(n)) < len(combine._batcher(64))


def test_clipped_mean_unchanged_by_the_network(monkeypatch):
    """The combination with the network's median and with the sorting one is the same."""
    rng = np.random.default_rng(3)
    stack = rng.normal(1000.0, 10.0, (11, 70, 50)).astype(np.float32)
    stack[rng.integers(0, 11, 200), rng.integers(0, 70, 200), rng.integers(0, 50, 200)] += 500
    got = clipped_mean(stack, noise_model=lambda med: np.float32(10.0))
    monkeypatch.setattr(combine, "_NETWORK_MAX", 0)
    want = clipped_mean(stack, noise_model=lambda med: np.float32(10.0))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def _bias_stack(n: int, seed: int) -> np.ndarray:
    """``n`` biases (ADU, float32): a 1000 ADU level with a column pattern, 3.5 ADU read noise,
    and cosmic rays / hot flashes of 50-5000 ADU in 0.2 % of the pixels."""
    rng = np.random.default_rng(seed)
    ny, nx = 96, 160
    pattern = rng.normal(0.0, 2.0, nx).astype(np.float32)
    stack = (1000.0 + pattern + rng.normal(0.0, 3.5, (n, ny, nx))).astype(np.float32)
    k = int(0.002 * stack.size)
    stack.reshape(-1)[rng.choice(stack.size, k, replace=False)] += rng.uniform(50, 5000, k)
    return stack


@pytest.mark.parametrize("n, maxiters", [(15, 1), (25, 1), (15, 3)])
def test_clipped_mean_is_astropy_sigma_clip(n, maxiters):
    """Without a noise model, the combination is astropy's ``sigma_clip`` about the median with
    the frames' standard deviation (what ``ccdproc.combine``'s sigma clipping does), then the
    mean of the values kept: the same values kept, means within 1e-6 relative (float32 sums)."""
    from astropy.stats import sigma_clip

    stack = _bias_stack(n, seed=n + maxiters)
    mean, n_used = clipped_mean(stack, sigma=3.0, maxiters=maxiters)
    ref = sigma_clip(stack, sigma=3.0, maxiters=maxiters, cenfunc="median", stdfunc="std",
                     axis=0)
    kept = (~np.ma.getmaskarray(ref)).sum(axis=0)
    assert np.mean(n_used == kept) > 0.9999
    same = n_used == kept
    np.testing.assert_allclose(mean[same], ref.mean(axis=0).data[same], rtol=1e-6)
    assert (n_used < n).any(), "the stack has values to reject"
