"""The Kroupa (2001) initial mass function as a cumulative number, to weight isochrone points.

The weight of a stretch of isochrone between initial masses m1 < m2 is the number of stars born
there, ``N(<m2) - N(<m1)``; the simulator draws its stars from the same broken power law
(``tgpcore.simulate.imf``).
"""

from __future__ import annotations

import numpy as np

#: Break masses (solar masses) and slopes alpha of dN/dm ∝ m^-alpha (Kroupa 2001).
KROUPA_BREAKS: tuple[float, ...] = (0.01, 0.08, 0.5, 150.0)
KROUPA_ALPHAS: tuple[float, ...] = (0.3, 1.3, 2.3)


def _segment_constants() -> tuple[np.ndarray, np.ndarray]:
    """Normalisation of dN/dm on each segment (continuous at the breaks) and N at the
    segment starts."""
    norms, starts = [], [0.0]
    norm = 1.0
    for i, alpha in enumerate(KROUPA_ALPHAS):
        if i > 0:
            norm *= KROUPA_BREAKS[i] ** (alpha - KROUPA_ALPHAS[i - 1])
        norms.append(norm)
        a, b = KROUPA_BREAKS[i], KROUPA_BREAKS[i + 1]
        p = 1.0 - alpha
        starts.append(starts[-1] + norm * (b**p - a**p) / p)
    return np.array(norms), np.array(starts[:-1])


_NORMS, _STARTS = _segment_constants()


def kroupa_cumulative(m: np.ndarray | float) -> np.ndarray:
    """Number of stars born below initial mass ``m`` (solar masses), unnormalised.

    Parameters
    ----------
    m : array_like
        Initial masses in solar masses (clipped to 0.01-150).

    Returns
    -------
    ndarray
        N(<m) in arbitrary but fixed units; differences give relative numbers of stars.
    """
    m = np.clip(np.asarray(m, float), KROUPA_BREAKS[0], KROUPA_BREAKS[-1])
    k = np.clip(np.searchsorted(KROUPA_BREAKS, m, side="right") - 1, 0, len(KROUPA_ALPHAS) - 1)
    alpha = np.asarray(KROUPA_ALPHAS)[k]
    a = np.asarray(KROUPA_BREAKS)[k]
    p = 1.0 - alpha
    return _STARTS[k] + _NORMS[k] * (m**p - a**p) / p
