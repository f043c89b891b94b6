"""Typical Gaia (E)DR3 astrometric uncertainties as a function of G.

Some exported tables (for example a cone saved with only ``parallax, pmra, pmdec``) lack the
error columns. The membership model needs an error per star, so this module supplies the
typical value for the star's G magnitude, interpolated in log-uncertainty between the typical
values quoted for Gaia EDR3 (Gaia Collaboration, Brown et al. 2021, A&A 649, A1): parallax
0.02-0.03 mas at G <= 15, 0.07 mas at G = 17, 0.5 mas at G = 20, 1.3 mas at G = 21; proper
motion 0.02-0.03, 0.07, 0.5 and 1.4 mas/yr. DR3 astrometry is that of EDR3. Results that use
these values say so (``errors_estimated``).
"""

from __future__ import annotations

import numpy as np

_G = np.array([12.0, 15.0, 17.0, 20.0, 21.0])
_PLX_MAS = np.array([0.02, 0.025, 0.07, 0.5, 1.3])
_PM_MASYR = np.array([0.02, 0.025, 0.07, 0.5, 1.4])
#: The G used where a star's G is unknown (a faint star: errors are not underestimated).
G_UNKNOWN = 20.5


def _interp_log(g: np.ndarray, table: np.ndarray) -> np.ndarray:
    g = np.where(np.isfinite(g), g, G_UNKNOWN)
    slope_hi = (np.log(table[-1]) - np.log(table[-2])) / (_G[-1] - _G[-2])
    out = np.exp(np.interp(g, _G, np.log(table)))
    beyond = g > _G[-1]
    out[beyond] = table[-1] * np.exp(slope_hi * (g[beyond] - _G[-1]))
    return out


def typical_parallax_error_mas(g) -> np.ndarray:
    """Typical DR3 parallax uncertainty (mas) at magnitude(s) ``g`` (NaN G: treated as faint)."""
    return _interp_log(np.atleast_1d(np.asarray(g, dtype=float)), _PLX_MAS)


def typical_pm_error_masyr(g) -> np.ndarray:
    """Typical DR3 proper-motion uncertainty per component (mas/yr) at magnitude(s) ``g``."""
    return _interp_log(np.atleast_1d(np.asarray(g, dtype=float)), _PM_MASYR)
