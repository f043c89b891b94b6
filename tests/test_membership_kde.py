"""The KDE centroid's kernel sums against the sums written out and against scikit-learn's
KernelDensity (the oracle: tgp sums them itself, see tgpcore/membership/kde.py)."""

from __future__ import annotations

import numpy as np

from tgpcore.membership.kde import _kernel_sum


def test_kernel_sum_is_the_sum_of_gaussians():
    """2-D (proper motions about a cluster plus a broad field) and 1-D (parallaxes): the sum
    of exp(-d^2 / 2 h^2) over the points, to 1e-10 relative where it is not negligible."""
    rng = np.random.default_rng(4)
    pm = np.vstack([rng.normal([-0.9, -2.6], 0.1, (300, 2)), rng.normal(0, 4.0, (2000, 2))])
    g1 = np.linspace(-1.0, 1.0, 41)
    grid = np.stack(np.meshgrid(-0.9 + g1, -2.6 + g1), -1).reshape(-1, 2)
    for h in (0.1, 0.4):
        d2 = ((grid[:, None, :] - pm[None, :, :]) ** 2).sum(-1)
        want = np.exp(-0.5 * d2 / h**2).sum(1)
        np.testing.assert_allclose(_kernel_sum(pm, grid, h), want, rtol=1e-10,
                                   atol=1e-12 * want.max())
    plx = rng.normal(0.67, 0.1, 500)
    pgrid = np.linspace(0.0, 1.5, 800)
    want = np.exp(-0.5 * ((pgrid[:, None] - plx[None, :]) / 0.05) ** 2).sum(1)
    np.testing.assert_allclose(_kernel_sum(plx, pgrid, 0.05), want, rtol=1e-10,
                               atol=1e-12 * want.max())


def test_kernel_sum_of_no_points_is_zero():
    assert not _kernel_sum(np.zeros((0, 2)), np.zeros((5, 2)), 0.2).any()
    assert not _kernel_sum(np.zeros(0), np.linspace(0, 1, 7), 0.2).any()


def test_kernel_sum_is_scikit_learns_kernel_density():
    """scikit-learn's Gaussian KernelDensity, unnormalised, is the oracle."""
    from sklearn.neighbors import KernelDensity

    rng = np.random.default_rng(5)
    pm = np.vstack([rng.normal([-11.0, -2.9], 0.15, (700, 2)), rng.normal(0, 5.0, (6000, 2))])
    g1 = np.linspace(-0.6, 0.6, 41)
    grid = np.stack(np.meshgrid(-11.0 + g1, -2.9 + g1), -1).reshape(-1, 2)
    for h in (0.15, 0.3):
        kde = KernelDensity(kernel="gaussian", bandwidth=h).fit(pm)
        want = np.exp(kde.score_samples(grid)) * len(pm) * 2.0 * np.pi * h * h
        np.testing.assert_allclose(_kernel_sum(pm, grid, h), want, rtol=1e-9)
    plx = rng.normal(1.15, 0.05, 900)
    pgrid = np.linspace(0.8, 1.5, 800)
    kde = KernelDensity(kernel="gaussian", bandwidth=0.03).fit(plx[:, None])
    want = np.exp(kde.score_samples(pgrid[:, None])) * len(plx) * np.sqrt(2.0 * np.pi) * 0.03
    got = _kernel_sum(plx, pgrid, 0.03)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * want.max())
