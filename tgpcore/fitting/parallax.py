"""The cluster's parallax from its members, as a prior on the distance modulus.

:func:`cluster_parallax_prior` takes a members table (``members.ecsv`` of ``tgp members``, a
published member list, or a catalogue with a probability column) and returns the cluster's
parallax with an honest error:

1. **Stars:** membership probability >= ``p_min`` (0.5), a parallax, RUWE < 1.4 where the
   column exists (a poor single-star astrometric fit), and not a 3-sigma outlier from the
   first mean.
2. **Zero point** (Lindegren et al. 2021, A&A 649, A4): with the columns the correction needs
   (``phot_g_mean_mag``, ``nu_eff_used_in_astrometry``, ``pseudocolour``, ``ecl_lat``,
   ``astrometric_params_solved``), each star's own zero point from the ``gaiadr3-zeropoint``
   package (5- and 6-parameter solutions in its validity range; other stars get the global
   offset), with a systematic uncertainty of 0.005 mas (the correction's stated accuracy, a
   few micro-arcseconds). Without them, the global offset of -0.017 mas (the quasars' median,
   Lindegren et al. 2021) with a systematic uncertainty of 0.015 mas: over the magnitudes,
   colours and ecliptic latitudes of typical cluster members the L21 correction varies by
   about that much about -0.017 (roughly -0.04 to 0.00 mas at G = 12-18).
3. **Weighted mean** with inverse-variance weights; each star's error is its
   ``parallax_error`` or, when the table has none, the typical DR3 uncertainty at its G
   (:func:`typical_parallax_error`, Lindegren et al. 2021 Table 4). The statistical error is
   inflated by sqrt(reduced chi^2) when the members scatter more than their errors (the
   cluster's depth, underestimated errors).
4. **Angular covariance floor:** Gaia parallaxes of stars close on the sky share errors that
   no average removes; 0.011 mas for a cluster's scale (Maíz Apellániz et al. 2021, A&A 649,
   A13: 10.3 µas; Vasiliev & Baumgardt 2021, MNRAS 505, 5978: 11 µas) is added in quadrature.

The prior on the distance modulus is then :func:`tgpcore.fitting.priors.dm_prior_from_parallax`
of the corrected parallax and its total error (no further zero point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.table import Table

from tgpcore.fitting.data import PROB_ALIASES, _column, _find
from tgpcore.fitting.priors import Prior, dm_prior_from_parallax

#: Column spellings of the parallax, its error, G and RUWE (case-insensitive).
PARALLAX_ALIASES = ("parallax", "plx", "parallax_mas", "parallax_mas_")
PARALLAX_ERROR_ALIASES = ("parallax_error", "e_plx", "plx_err", "parallax_err", "e_parallax",
                          "parallax_error_mas")
G_ALIASES = ("phot_g_mean_mag", "gmag", "g", "g_mag")
RUWE_ALIASES = ("ruwe",)
#: Global parallax zero point of Gaia (E)DR3 (mas; Lindegren et al. 2021) and the systematic
#: uncertainty of using it for any particular set of stars.
GLOBAL_ZERO_POINT_MAS = -0.017
GLOBAL_ZERO_POINT_SYS_MAS = 0.015
#: Systematic uncertainty of the L21 per-star correction (mas).
L21_SYS_MAS = 0.005
#: Angular-covariance floor of a cluster's mean parallax (mas).
ANGULAR_FLOOR_MAS = 0.011
#: Columns the L21 correction needs.
L21_COLUMNS = ("phot_g_mean_mag", "nu_eff_used_in_astrometry", "pseudocolour", "ecl_lat",
               "astrometric_params_solved")
#: Typical DR3 parallax uncertainty (mas) against G for 5-parameter solutions (Lindegren et
#: al. 2021, Table 4, and the DR3 documentation): interpolated in log.
_TYPICAL_G = np.array([9.0, 12.0, 15.0, 17.0, 19.0, 20.0, 21.0])
_TYPICAL_SIGMA = np.array([0.015, 0.015, 0.024, 0.07, 0.26, 0.5, 1.3])


def typical_parallax_error(g: np.ndarray) -> np.ndarray:
    """Typical Gaia DR3 parallax uncertainty (mas) at magnitude G."""
    return np.exp(np.interp(np.asarray(g, float), _TYPICAL_G, np.log(_TYPICAL_SIGMA)))


@dataclass
class ClusterParallax:
    """A cluster's parallax: ``parallax_mas`` (zero point corrected) and ``error_mas`` (total:
    statistical, zero point and angular floor), with the pieces and what was done.

    Unpacks as ``plx, err, notes = cluster_parallax_prior(members)``.
    """

    parallax_mas: float
    error_mas: float
    notes: list[str] = field(default_factory=list)
    raw_mean_mas: float = math.nan
    stat_error_mas: float = math.nan
    zero_point_mas: float = math.nan
    zero_point_sys_mas: float = math.nan
    floor_mas: float = ANGULAR_FLOOR_MAS
    n_stars: int = 0
    zero_point_method: str = ""

    def __iter__(self):
        return iter((self.parallax_mas, self.error_mas, self.notes))

    def prior(self) -> Prior:
        """The Gaussian prior on the distance modulus."""
        p = dm_prior_from_parallax(self.parallax_mas, self.error_mas, zero_point_mas=0.0)
        return Prior("gaussian", mu=p.mu, sigma=p.sigma,
                     note=f"members' parallax {self.parallax_mas:.4f} ± {self.error_mas:.4f} mas "
                          f"({self.n_stars} stars; zero point {self.zero_point_method})")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for fit.json)."""
        pr = self.prior()
        return {"used": True, "parallax_mas": self.parallax_mas, "error_mas": self.error_mas,
                "raw_weighted_mean_mas": self.raw_mean_mas,
                "stat_error_mas": self.stat_error_mas,
                "zero_point_mas": self.zero_point_mas,
                "zero_point_sys_mas": self.zero_point_sys_mas,
                "zero_point_method": self.zero_point_method,
                "angular_covariance_floor_mas": self.floor_mas, "n_stars": self.n_stars,
                "dm_prior": {"mu": pr.mu, "sigma": pr.sigma}, "notes": list(self.notes)}


def _l21_zero_points(table: Table, rows: np.ndarray) -> tuple[np.ndarray, str] | None:
    """Per-star L21 zero points (mas; NaN where outside the correction's range), or None
    when the columns or the package are missing."""
    cols = {c.lower(): c for c in table.colnames}
    if not all(c in cols for c in L21_COLUMNS):
        return None
    try:
        from zero_point import zpt
    except ImportError:
        return None
    zpt.load_tables()
    g = _column(table, cols["phot_g_mean_mag"])[rows]
    nu = _column(table, cols["nu_eff_used_in_astrometry"])[rows]
    pc = _column(table, cols["pseudocolour"])[rows]
    lat = _column(table, cols["ecl_lat"])[rows]
    sol = np.nan_to_num(_column(table, cols["astrometric_params_solved"])[rows]).astype(int)
    out = np.full(len(rows), np.nan)
    ok = np.isin(sol, (31, 95)) & np.isfinite(g) & np.isfinite(lat) & (g >= 6) & (g <= 21)
    ok &= np.where(sol == 31, np.isfinite(nu), np.isfinite(pc))
    if ok.any():
        out[ok] = zpt.get_zpt(g[ok], np.where(sol[ok] == 31, nu[ok], np.nan),
                              np.where(sol[ok] == 95, pc[ok], np.nan), lat[ok], sol[ok],
                              _warnings=False)
    return out, "Lindegren et al. 2021 per star (gaiadr3-zeropoint)"


def cluster_parallax_prior(members: Table, p_min: float = 0.5,
                           floor_mas: float = ANGULAR_FLOOR_MAS,
                           source: str = "members") -> ClusterParallax:
    """The members' mean parallax, zero-point corrected, with its total error.

    Parameters
    ----------
    members : astropy.table.Table
        Stars with a parallax column (``parallax``, ``Plx``, ...), optionally its error, G,
        RUWE, a membership probability (:data:`tgpcore.fitting.data.PROB_ALIASES`; without
        one every row counts as a member) and the L21 columns.
    p_min : float
        Least membership probability of the stars used.
    floor_mas : float
        Angular-covariance floor added in quadrature.
    source : str
        Name of the table, for messages.

    Returns
    -------
    ClusterParallax
        Unpacks as ``(parallax_mas, error_mas, notes)``; ``.prior()`` is the distance-modulus
        prior, ``.to_dict()`` what fit.json records.

    Raises
    ------
    KeyError
        No parallax column.
    ValueError
        Fewer than 3 usable members, or a mean parallax that is not positive.
    """
    cols = members.colnames
    pcol = _find(cols, PARALLAX_ALIASES)
    if pcol is None:
        raise KeyError(f"{source}: no parallax column ({', '.join(PARALLAX_ALIASES)})")
    plx = _column(members, pcol)
    notes: list[str] = []
    prob_col = _find(cols, PROB_ALIASES)
    prob = np.nan_to_num(_column(members, prob_col)) if prob_col else np.ones(len(members))
    ecol = _find(cols, PARALLAX_ERROR_ALIASES)
    gcol = _find(cols, G_ALIASES)
    g = _column(members, gcol) if gcol else np.full(len(members), np.nan)
    if ecol:
        err = _column(members, ecol)
    elif gcol:
        err = typical_parallax_error(g)
        notes.append("no parallax errors in the table: typical DR3 errors at each star's G "
                     "(Lindegren et al. 2021) used as weights")
    else:
        err = np.full(len(members), 0.1)
        notes.append("no parallax errors and no G: equal weights")
    ok = (prob >= p_min) & np.isfinite(plx) & np.isfinite(err) & (err > 0)
    rcol = _find(cols, RUWE_ALIASES)
    if rcol:
        ruwe = _column(members, rcol)
        bad = ok & np.isfinite(ruwe) & (ruwe >= 1.4)
        if bad.any():
            notes.append(f"{int(bad.sum())} members with RUWE >= 1.4 left out")
        ok &= ~(np.isfinite(ruwe) & (ruwe >= 1.4))
    rows = np.flatnonzero(ok)
    if len(rows) < 3:
        raise ValueError(f"{source}: only {len(rows)} members with p >= {p_min} and a "
                         "parallax: no parallax prior")
    # zero point per star where possible
    zp = np.full(len(rows), GLOBAL_ZERO_POINT_MAS)
    l21 = _l21_zero_points(members, rows)
    if l21 is not None and np.isfinite(l21[0]).any():
        z, method = l21
        have = np.isfinite(z)
        zp[have] = z[have]
        zp_sys = L21_SYS_MAS
        zp_method = method + (f"; global {GLOBAL_ZERO_POINT_MAS} mas for {int((~have).sum())} "
                              "stars outside its range" if (~have).any() else "")
    else:
        zp_sys = GLOBAL_ZERO_POINT_SYS_MAS
        zp_method = (f"global offset {GLOBAL_ZERO_POINT_MAS} mas (Lindegren et al. 2021) ± "
                     f"{GLOBAL_ZERO_POINT_SYS_MAS} mas: the table lacks "
                     + ", ".join(c for c in L21_COLUMNS
                                 if c.lower() not in {x.lower() for x in cols})
                     if l21 is None else "global offset (L21 correction unavailable)")
    x = plx[rows] - zp
    s = err[rows]
    # 3-sigma clipping about the weighted mean (foreground/background interlopers)
    keep = np.ones(len(x), bool)
    for _ in range(5):
        w = 1.0 / s[keep] ** 2
        mean = float(np.sum(w * x[keep]) / np.sum(w))
        new = np.abs(x - mean) < 3.0 * np.hypot(s, 0.0)
        if np.array_equal(new, keep) or new.sum() < 3:
            break
        keep = new
    if (~keep).any():
        notes.append(f"{int((~keep).sum())} members more than 3 sigma from the mean parallax "
                     "left out")
    w = 1.0 / s[keep] ** 2
    mean = float(np.sum(w * x[keep]) / np.sum(w))
    stat = float(1.0 / np.sqrt(np.sum(w)))
    n = int(keep.sum())
    chi2 = float(np.sum(w * (x[keep] - mean) ** 2) / max(n - 1, 1))
    if chi2 > 1.0:
        stat *= math.sqrt(chi2)
        notes.append(f"members scatter {math.sqrt(chi2):.2f} times their errors: statistical "
                     "error scaled up accordingly")
    raw = float(np.sum(w * plx[rows][keep]) / np.sum(w))
    total = math.sqrt(stat**2 + zp_sys**2 + floor_mas**2)
    if mean <= 0:
        raise ValueError(f"{source}: mean parallax {mean:.4f} mas is not positive")
    notes.append(f"{n} members (p >= {p_min}): weighted mean {raw:.4f} mas, corrected "
                 f"{mean:.4f} ± {stat:.4f} (stat) ± {zp_sys:.4f} (zero point) ± "
                 f"{floor_mas:.4f} (angular covariance) mas")
    return ClusterParallax(mean, total, notes, raw, stat, float(np.mean(zp[keep])), zp_sys,
                           floor_mas, n, zp_method)
