"""tgpcore.calibration.lacosmic against astroscrappy itself: the same cosmic-ray mask, pixel for
pixel, away from the outer 6 pixels (where astroscrappy leaves its median filters unapplied and
ours reflects the image)."""

from __future__ import annotations

import astroscrappy
import numpy as np
import pytest
from _starfield import star_field

from tgpcore.calibration.lacosmic import detect_cosmics

EDGE = 6


@pytest.fixture(scope="module")
def field():
    """A crowded 512x512 star field (FWHM 2.5 px, a dense core) with 150 injected hits of
    1-5 px, some on stars, and a masked block."""
    data, _, _ = star_field(n=800, size=512, fwhm=2.5, sky_e=300.0, seed=3,
                            core=(250.0, 260.0, 25.0, 200))
    rng = np.random.default_rng(5)
    hits = np.zeros(data.shape, bool)
    for _ in range(150):
        y, x = rng.integers(10, 502, 2)
        ang = rng.uniform(0, np.pi)
        for t in range(int(rng.integers(1, 6))):
            yy, xx = int(y + t * np.sin(ang)), int(x + t * np.cos(ang))
            data[yy, xx] += rng.uniform(150.0, 3000.0)
            hits[yy, xx] = True
    mask = np.zeros(data.shape, bool)
    mask[100:110, 200:260] = True
    mask[300:400, 77] = True                   # a bad column, with hits beside it
    for y in (310, 330, 350, 371):
        data[y, 78 + (y % 2)] += 1500.0
        hits[y, 78 + (y % 2)] = True
    return data.astype(np.float32), mask, hits


def reference(data, mask, niter, var=None, **kw):
    crmask, _ = astroscrappy.detect_cosmics(
        data, inmask=mask, gain=1.0, readnoise=5.0, satlevel=np.inf, niter=niter, sepmed=True,
        cleantype="meanmask", fsmode="median", invar=var, verbose=False, **kw)
    return np.asarray(crmask, bool)


@pytest.mark.parametrize("niter", [1, 2, 4])
def test_same_mask_as_astroscrappy(field, niter):
    data, mask, hits = field
    ref = reference(data, mask, niter)
    ours = detect_cosmics(data, mask, 5.0, niter=niter)
    inner = (slice(EDGE, -EDGE), slice(EDGE, -EDGE))
    assert ref[inner].sum() > 300, "the field has hits to find"
    assert (ref[inner] & hits[inner]).sum() > 0.8 * hits[inner].sum()
    np.testing.assert_array_equal(ours[inner], ref[inner])
    assert not (ours & mask).any()


def test_same_mask_with_variance_and_other_thresholds(field):
    data, mask, _ = field
    var = (np.maximum(data, 0) + 25.0) * np.float32(1.3)
    kw = {"sigclip": 4.0, "sigfrac": 0.5, "objlim": 3.0}
    ref = reference(data, mask, 2, var=var, **kw)
    ours = detect_cosmics(data, mask, 5.0, niter=2, var=var, **kw)
    inner = (slice(EDGE, -EDGE), slice(EDGE, -EDGE))
    np.testing.assert_array_equal(ours[inner], ref[inner])


def test_hits_at_the_edge_are_found_and_bad_shapes_refused():
    rng = np.random.default_rng(1)
    data = rng.normal(300.0, np.sqrt(325.0), (64, 80)).astype(np.float32)
    data[0, 40] += 2000.0
    data[63, 0] += 2000.0
    cr = detect_cosmics(data, None, 5.0, niter=2)
    assert cr[0, 40] and cr[63, 0]
    assert cr.sum() <= 6
    with pytest.raises(ValueError, match="mask shape"):
        detect_cosmics(data, np.zeros((3, 3), bool), 5.0)
    with pytest.raises(ValueError, match="2-D"):
        detect_cosmics(data[0], None, 5.0)


def test_degenerate_images():
    """Everything masked, a flat image and an image smaller than the padding: no crash, no
    false hits."""
    flat = np.full((40, 50), 100.0, np.float32)
    assert not detect_cosmics(flat, None, 5.0).any()
    hit = flat.copy()
    hit[20, 25] += 5000.0
    assert not detect_cosmics(hit, np.ones(hit.shape, bool), 5.0).any()
    small = np.full((5, 6), 100.0, np.float32)
    small[2, 3] += 5000.0
    cr = detect_cosmics(small, None, 5.0, niter=2)
    assert cr.shape == small.shape and cr[2, 3]


def test_reused_buffers_carry_nothing_between_images(field):
    """The per-thread maps are reset only where an image wrote: each mask is the one computed
    in a fresh thread (fresh maps), through a sequence of images of one size, another size
    and a failing call."""
    import threading

    def in_fresh_thread(*args, **kw):
        out = {}
        t = threading.Thread(target=lambda: out.update(cr=detect_cosmics(*args, **kw)))
        t.start()
        t.join()
        return out["cr"]

    data, mask, _ = field
    other = np.roll(data, 7, axis=1)
    small = data[:300, :200].copy()
    for img, m, niter in ((data, mask, 4), (other, None, 4), (data, mask, 2), (small, None, 2),
                          (other, None, 2)):
        got = detect_cosmics(img, m, 5.0, niter=niter)
        assert got.sum() > 0
        np.testing.assert_array_equal(got, in_fresh_thread(img, m, 5.0, niter=niter))
    with pytest.raises(ValueError):
        detect_cosmics(data, np.zeros((3, 3), bool), 5.0)
    np.testing.assert_array_equal(detect_cosmics(other, None, 5.0, niter=4),
                                  in_fresh_thread(other, None, 5.0, niter=4))


@pytest.mark.parametrize("n", [5, 7, 9])
def test_median_networks_select_the_median(n):
    """A comparator network selects the median of every input if it does for every input of
    0s and 1s (the zero-one principle): all 2^n of them, then random values with ties."""
    import itertools

    from tgpcore.calibration.lacosmic import _NETWORKS, _line_median

    bits = np.array(list(itertools.product([0.0, 1.0], repeat=n)), np.float32)
    rng = np.random.default_rng(n)
    for rows in (bits, rng.integers(0, 4, (50_000, n)).astype(np.float32),
                 rng.normal(size=(50_000, n)).astype(np.float32)):
        idx = np.arange(len(rows)) * n + n // 2
        np.testing.assert_array_equal(_line_median(rows.ravel(), idx, n // 2, 1),
                                      np.median(rows, axis=1))
    assert len(_NETWORKS[n]) == {5: 7, 7: 13, 9: 19}[n]


@pytest.mark.parametrize("level", [0.0, 5.0e4])
def test_candidates_are_exactly_where_the_laplacian_passes(level):
    """The first candidates come from a cheap bound of the Laplacian, the Laplacian itself
    computed only where the bound passes: they are exactly the good pixels whose Laplacian,
    computed everywhere, exceeds their block's threshold. Also on a bright level (5e4 e-, the
    bound's float32 rounding is then coarse), with thresholds at the edge of what passes."""
    from tgpcore.calibration.lacosmic import _above, _lap4

    rng = np.random.default_rng(11)
    img = (level + rng.normal(0, 30, (136, 200))).astype(np.float32)
    img[rng.integers(1, 135, 400), rng.integers(1, 199, 400)] += 400
    img[50:54, 60:64] = level   # flat patches: a Laplacian of 0
    # Where w = e and n = s, the Laplacian's four terms are equal and the bound is tight (the
    # Laplacian can round above it): so around the pixels that set the thresholds.
    y, x = np.meshgrid(np.arange(3, 136, 8), np.arange(5, 200, 8), indexing="ij")
    img[y, x + 1], img[y + 1, x] = img[y, x - 1], img[y - 1, x]
    full = np.zeros_like(img)
    full[1:-1, 1:-1] = _lap4(img[1:-1, 1:-1], img[:-2, 1:-1], img[2:, 1:-1], img[1:-1, :-2],
                             img[1:-1, 2:])
    # each block's threshold is the Laplacian of one of its pixels, or near it
    blocks = full[3::8, 5::8] * rng.choice(np.float32([1.0, 1 - 2e-7, 1 + 2e-7, 0.5]),
                                           (17, 25))
    blocks = np.maximum(blocks, np.float32(1e-3))
    good = rng.random(img.shape) > 0.05
    want = np.flatnonzero((full > np.repeat(np.repeat(blocks, 8, 0), 8, 1)) & good)
    for rows in (8, 64, 136):
        np.testing.assert_array_equal(_above(img, blocks, good, rows=rows), want)


def test_padding_by_hand_is_numpys():
    """The reflection into kept buffers is np.pad's, for every shape and width (and falls back
    to np.pad where it reflects more than once), twice in a row in the same buffer."""
    from tgpcore.calibration.lacosmic import _padded

    rng = np.random.default_rng(2)
    for shape in ((40, 37), (12, 11), (3, 5), (2, 2), (25, 64)):
        for pads in (((10, 14), (10, 11)), ((0, 0), (3, 0)), ((1, 2), (0, 4)), ((0, 1), (1, 0))):
            for dtype in (np.float32, bool):
                for _ in range(2):
                    a = (rng.random(shape) > 0.5).astype(dtype)
                    if dtype is np.float32:
                        a = rng.normal(size=shape).astype(dtype)
                    np.testing.assert_array_equal(_padded("test", a, pads),
                                                  np.pad(a, pads, mode="reflect"))
