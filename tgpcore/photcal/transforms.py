"""Published transformations from survey photometry to Johnson B, V.

Each transformation turns a reference table into ``B``, ``V`` (and their errors, including
the transformation's own scatter) and says where it comes from.

- ``johnson``: the catalogue already has Johnson ``B``, ``V`` (APASS, Landolt, a simulator's
  table): used as they are.
- ``sdss_jester2005``: SDSS g, r -> B, V, Jester et al. (2005, AJ 130, 873), Table 1, all
  stars with R-I < 1.15: ``B = g + 0.39 (g-r) + 0.21`` (rms 0.03),
  ``V = g - 0.59 (g-r) - 0.01`` (rms 0.01).
- ``gaia_riello2021``: Gaia (E)DR3 G, BP-RP -> V, Riello et al. (2021, A&A 649, A3),
  Table C.2: ``G - V = -0.02704 + 0.01424 x - 0.2156 x² + 0.01426 x³`` with x = BP-RP
  (rms 0.03027); valid for -0.5 < BP-RP < 2.75. No B transformation is published there, so
  this gives V only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from astropy.table import Table


def _col(t: Table, *names: str) -> np.ndarray | None:
    for n in names:
        if n in t.colnames:
            return np.asarray(t[n], float)
    return None


def johnson(t: Table) -> Table:
    """Johnson B, V already in the catalogue."""
    out = Table()
    for b in ("U", "B", "V"):
        m = _col(t, b, f"{b}mag", f"{b.lower()}_mag")
        if m is not None:
            out[b] = m
            e = _col(t, f"{b}_err", f"e_{b}mag", f"{b}_error")
            out[f"{b}_err"] = e if e is not None else np.full(len(t), 0.02)
    return out


def sdss_jester2005(t: Table) -> Table:
    """SDSS g, r -> Johnson B, V (Jester et al. 2005, all stars with R-I < 1.15)."""
    g, r = _col(t, "g", "gmag", "psfMag_g"), _col(t, "r", "rmag", "psfMag_r")
    if g is None or r is None:
        raise ValueError("sdss_jester2005 needs g and r columns")
    eg = _col(t, "g_err", "e_gmag", "psfMagErr_g")
    er = _col(t, "r_err", "e_rmag", "psfMagErr_r")
    eg = eg if eg is not None else np.zeros(len(t))
    er = er if er is not None else np.zeros(len(t))
    gr = g - r
    out = Table()
    out["B"] = g + 0.39 * gr + 0.21
    out["V"] = g - 0.59 * gr - 0.01
    out["B_err"] = np.sqrt((1.39 * eg) ** 2 + (0.39 * er) ** 2 + 0.03**2)
    out["V_err"] = np.sqrt((0.41 * eg) ** 2 + (0.59 * er) ** 2 + 0.01**2)
    return out


def gaia_riello2021(t: Table) -> Table:
    """Gaia G, BP-RP -> Johnson V (Riello et al. 2021, Table C.2); V only."""
    g = _col(t, "phot_g_mean_mag", "G", "g_mag")
    bp_rp = _col(t, "bp_rp", "BP_RP")
    if bp_rp is None:
        bp, rp = _col(t, "phot_bp_mean_mag", "BP"), _col(t, "phot_rp_mean_mag", "RP")
        bp_rp = bp - rp if bp is not None and rp is not None else None
    if g is None or bp_rp is None:
        raise ValueError("gaia_riello2021 needs G and BP-RP")
    x = bp_rp
    g_v = -0.02704 + 0.01424 * x - 0.2156 * x**2 + 0.01426 * x**3
    out = Table()
    v = g - g_v
    v[(x < -0.5) | (x > 2.75)] = np.nan
    out["V"] = v
    out["V_err"] = np.full(len(t), 0.03027)
    return out


TRANSFORMATIONS: dict[str, tuple[Callable[[Table], Table], str]] = {
    "johnson": (johnson, "Johnson magnitudes of the catalogue, no transformation"),
    "sdss_jester2005": (sdss_jester2005, "SDSS g,r -> B,V: Jester et al. (2005) AJ 130, 873, "
                                         "Table 1 (all stars, R-I < 1.15)"),
    "gaia_riello2021": (gaia_riello2021, "Gaia G,BP-RP -> V: Riello et al. (2021) A&A 649, "
                                         "A3, Table C.2"),
}


def to_johnson(t: Table, transformation: str) -> tuple[Table, str]:
    """Apply a named transformation; returns the Johnson table (rows as ``t``) and its
    description."""
    if transformation not in TRANSFORMATIONS:
        raise KeyError(f"unknown transformation {transformation!r}; known: "
                       f"{sorted(TRANSFORMATIONS)}")
    fn, desc = TRANSFORMATIONS[transformation]
    return fn(t), desc


def guess_transformation(t: Table) -> str:
    """The transformation a reference table calls for, from its columns."""
    cols = set(t.colnames)
    if {"B", "V"} <= cols or {"Bmag", "Vmag"} <= cols:
        return "johnson"
    if {"g", "r"} <= cols or {"gmag", "rmag"} <= cols:
        return "sdss_jester2005"
    if "phot_g_mean_mag" in cols or "G" in cols:
        return "gaia_riello2021"
    raise ValueError(f"cannot tell the photometric system of a table with {sorted(cols)}")
