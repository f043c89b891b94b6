"""Two-frame stacks: a cosmic ray's remains in one frame are clipped, the two seeings' star
profiles are not.

With only two valid frames there is no median of the others to clip against; the higher
value is clipped where it exceeds the lower by 5 sigma plus 100 % of the lower. Tolerances:
every injected remains pixel (300-3000 e-/s above the profile, on the sky and on a star's
wing) is clipped, no other pixel is, and there the stack equals the clean frame's value.
"""

from __future__ import annotations

import numpy as np
import pytest

from tgpcore.registration.stack import combine_block


def _moffat(shape, x0, y0, flux, fwhm, beta=3.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    a = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    r2 = (xx - x0) ** 2 + (yy - y0) ** 2
    return flux * (beta - 1.0) / (np.pi * a * a) * (1.0 + r2 / (a * a)) ** (-beta)


def _pair(seed=1):
    rng = np.random.default_rng(seed)
    shape, sky = (64, 64), 100.0
    frames, var = [], []
    # the same stars under two seeings, 3.0 and 3.6 px (the sharper core is 40 % higher)
    for fwhm in (3.0, 3.6):
        model = sky + _moffat(shape, 30.3, 31.6, 2e5, fwhm) + _moffat(shape, 12.0, 50.0, 2e3,
                                                                       fwhm)
        frames.append(model + rng.normal(0.0, np.sqrt(model + 25.0)))
        var.append(model + 25.0)
    d, v = np.array(frames), np.array(var)
    clean = d.copy()
    hits = [(31, 36), (32, 36), (10, 10), (50, 20), (51, 21)]  # (y, x): wing and sky
    for (y, x), amp in zip(hits, (3000.0, 2500.0, 300.0, 800.0, 600.0), strict=True):
        d[0, y, x] += amp
    return d, v, clean, hits, sky


def test_two_frames_clip_the_remains_of_a_cosmic_ray_only():
    d, v, clean, hits, sky = _pair()
    bad = np.zeros(d.shape, bool)
    mean, var, used, clipped = combine_block(d, v, bad, np.array([sky, sky]), None, 5.0, 0.1,
                                             3)
    expect = np.zeros(d.shape, bool)
    for y, x in hits:
        expect[0, y, x] = True
    assert (clipped == expect).all(), np.argwhere(clipped != expect)
    for y, x in hits:
        assert mean[y, x] == clean[1, y, x]
        assert var[y, x] == pytest.approx(v[1, y, x])
    # elsewhere the two frames are averaged: the star's core keeps both seeings
    w = 1.0 / v
    avg = (w * clean).sum(0) / w.sum(0)
    ok = ~expect[0]
    assert np.allclose(mean[ok], avg[ok])


def test_pair_clipping_can_be_turned_off_and_needs_two_frames():
    d, v, clean, hits, sky = _pair()
    bad = np.zeros(d.shape, bool)
    _, _, _, clipped = combine_block(d, v, bad, np.array([sky, sky]), None, 5.0, 0.1, 3,
                                     pair_tol=None)
    assert not clipped.any()
    # a pixel the other frame masks has one value: nothing to compare, nothing clipped
    y, x = hits[0]
    bad[1, y, x] = True
    mean, _, used, clipped = combine_block(d, v, bad, np.array([sky, sky]), None, 5.0, 0.1, 3)
    assert not clipped[:, y, x].any() and used[0, y, x] and mean[y, x] == d[0, y, x]
