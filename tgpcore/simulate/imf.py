"""The Kroupa (2001) initial mass function and sampling from it."""

from __future__ import annotations

import numpy as np

#: Break masses (solar masses) and slopes alpha of dN/dm ∝ m^-alpha (Kroupa 2001).
KROUPA_BREAKS: tuple[float, ...] = (0.01, 0.08, 0.5, 150.0)
KROUPA_ALPHAS: tuple[float, ...] = (0.3, 1.3, 2.3)


def _segments(m_lo: float, m_hi: float):
    """Piecewise power-law segments inside [m_lo, m_hi] with continuous weights."""
    segs = []
    norm = 1.0
    for i, alpha in enumerate(KROUPA_ALPHAS):
        a, b = KROUPA_BREAKS[i], KROUPA_BREAKS[i + 1]
        if i > 0:
            # continuity of dN/dm at the break a
            norm *= a ** (KROUPA_ALPHAS[i] - KROUPA_ALPHAS[i - 1])
        lo, hi = max(a, m_lo), min(b, m_hi)
        if hi > lo:
            p = 1.0 - alpha
            weight = norm * (hi**p - lo**p) / p
            segs.append((lo, hi, alpha, weight))
    return segs


def sample_kroupa(n: int, rng: np.random.Generator, m_lo: float = 0.1,
                  m_hi: float = 100.0) -> np.ndarray:
    """Draw ``n`` initial masses (solar masses) from the Kroupa IMF within [m_lo, m_hi].

    Parameters
    ----------
    n : int
        Number of masses.
    rng : numpy.random.Generator
        Random generator.
    m_lo, m_hi : float
        Mass range in solar masses.

    Returns
    -------
    ndarray
        Masses, in the order drawn.
    """
    if not 0.01 <= m_lo < m_hi <= 150.0:
        raise ValueError("need 0.01 <= m_lo < m_hi <= 150")
    segs = _segments(m_lo, m_hi)
    weights = np.array([s[3] for s in segs])
    which = rng.choice(len(segs), size=n, p=weights / weights.sum())
    u = rng.random(n)
    out = np.empty(n)
    for k, (lo, hi, alpha, _) in enumerate(segs):
        sel = which == k
        p = 1.0 - alpha
        out[sel] = (lo**p + u[sel] * (hi**p - lo**p)) ** (1.0 / p)
    return out
