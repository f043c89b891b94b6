"""The King (1962) surface-density profile of a star cluster, and radii drawn from it."""

from __future__ import annotations

import numpy as np


def king_surface_density(r, rc: float, rt: float) -> np.ndarray:
    """King (1962) surface density (arbitrary normalisation), zero beyond the tidal radius.

    ``Σ(r) ∝ [1/sqrt(1 + (r/rc)²) - 1/sqrt(1 + (rt/rc)²)]²`` for r < rt.
    """
    r = np.asarray(r, dtype=float)
    s = 1.0 / np.sqrt(1.0 + (r / rc) ** 2) - 1.0 / np.sqrt(1.0 + (rt / rc) ** 2)
    return np.where(r < rt, s**2, 0.0)


def sample_king_radii(n: int, rc: float, rt: float, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` projected radii (same unit as rc, rt) from a King profile.

    Parameters
    ----------
    n : int
        Number of radii.
    rc, rt : float
        Core and tidal radius (rc < rt).
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    ndarray
        Radii in [0, rt), by inverse transform on a fine tabulated cumulative.
    """
    if not 0 < rc < rt:
        raise ValueError("need 0 < rc < rt")
    r = np.linspace(0.0, rt, 4001)
    pdf = 2.0 * np.pi * r * king_surface_density(r, rc, rt)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(r))])
    cdf /= cdf[-1]
    return np.interp(rng.random(n), cdf, r)
