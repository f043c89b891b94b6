"""Cross-match a photometric catalogue to Gaia: epoch propagation, error-based radius, 1-to-1.

Gaia positions are moved from their reference epoch to the observation epoch by their proper
motions (linear in the tangent plane; over decades the curvature is negligible), and their
position errors grow by the proper-motion errors times the epoch difference (stars without a
proper motion get :data:`UNKNOWN_PM_MASYR` as its uncertainty). A pair is a candidate if its
separation is within ``n_sigma`` times the combined error (photometric and propagated Gaia,
in quadrature), clipped to ``[min_radius, max_radius]``. Candidates are then assigned one to
one, best normalised separation first; a source with more than one candidate, or a Gaia star
claimed by more than one source, is recorded as ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky
from astropy.table import Table

from tgpcore.catalogs.columns import GAIA_REF_EPOCH, column_values

UNKNOWN_PM_MASYR = 10.0
_MAS_PER_DEG = 3.6e6


@dataclass
class CrossMatch:
    """Result of :func:`crossmatch_to_gaia`.

    Attributes
    ----------
    matches : astropy.table.Table
        One row per photometric source, in input order: ``row`` (its index),
        ``gaia_source_id`` (-1 if unmatched), ``sep_arcsec``, ``sep_sigma`` (separation over
        the combined error), ``radius_arcsec`` (the pair's match radius), ``n_candidates``,
        ``ambiguous``.
    ambiguous : astropy.table.Table
        Every candidate pair that involves an ambiguous source or Gaia star: ``row``,
        ``gaia_source_id``, ``sep_arcsec``, ``sep_sigma``, ``chosen``.
    summary : dict
        Counts and settings.
    """

    matches: Table
    ambiguous: Table
    summary: dict


def propagate_gaia(gaia: Table, epoch_yr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaia positions at ``epoch_yr`` and their 1-D position error (mas) there.

    Parameters
    ----------
    gaia : astropy.table.Table
        Archive names; ``ref_epoch`` per row, else ``meta["ref_epoch_yr"]``, else DR3's 2016.0.
    epoch_yr : float
        Julian epoch of the observation.

    Returns
    -------
    ra_deg, dec_deg, sigma_mas : ndarray
    """
    n = len(gaia)
    if "ref_epoch" in gaia.colnames:
        ref = column_values(gaia, "ref_epoch", "yr")
    else:
        ref = np.full(n, float(gaia.meta.get("ref_epoch_yr", GAIA_REF_EPOCH["dr3"])))
    dt = epoch_yr - ref
    ra, dec = column_values(gaia, "ra", "deg"), column_values(gaia, "dec", "deg")

    def col(name, unit, default):
        v = column_values(gaia, name, unit) if name in gaia.colnames else np.full(n, np.nan)
        return np.where(np.isfinite(v), v, default)

    pmra = col("pmra", "mas/yr", 0.0)
    pmdec = col("pmdec", "mas/yr", 0.0)
    has_pm = np.isfinite(column_values(gaia, "pmra", "mas/yr")) if "pmra" in gaia.colnames \
        else np.zeros(n, bool)
    e_pmra = np.where(has_pm, col("pmra_error", "mas/yr", 0.0), UNKNOWN_PM_MASYR)
    e_pmdec = np.where(has_pm, col("pmdec_error", "mas/yr", 0.0), UNKNOWN_PM_MASYR)
    e_ra, e_dec = col("ra_error", "mas", 1.0), col("dec_error", "mas", 1.0)
    dec_t = dec + pmdec * dt / _MAS_PER_DEG
    ra_t = ra + pmra * dt / _MAS_PER_DEG / np.cos(np.radians(dec))
    s_ra = np.hypot(e_ra, e_pmra * dt)
    s_dec = np.hypot(e_dec, e_pmdec * dt)
    return ra_t % 360.0, dec_t, np.sqrt(0.5 * (s_ra**2 + s_dec**2))


def crossmatch_to_gaia(phot: Table, gaia: Table, epoch_yr: float, *, ra_col: str = "ra",
                       dec_col: str = "dec", ra_err_col: str | None = "ra_err",
                       dec_err_col: str | None = "dec_err",
                       default_error_arcsec: float = 0.3, n_sigma: float = 5.0,
                       min_radius_arcsec: float = 0.3, max_radius_arcsec: float = 3.0
                       ) -> CrossMatch:
    """Match each photometric source to at most one Gaia star, and each Gaia star to at most one.

    Parameters
    ----------
    phot : astropy.table.Table
        Our catalogue: ``ra_col``/``dec_col`` in degrees; ``ra_err_col``/``dec_err_col`` the
        position errors (unit from the column's metadata, arcsec if it has none; the RA error
        is an error on the sky, not in RA coordinate). Missing error columns use
        ``default_error_arcsec``.
    gaia : astropy.table.Table
        Gaia table (archive names).
    epoch_yr : float
        Observation epoch (Julian year, e.g. ``Time(mjd, format="mjd").jyear``).
    n_sigma : float
        Match radius in combined standard errors.
    min_radius_arcsec, max_radius_arcsec : float
        Clip of the per-pair radius.

    Returns
    -------
    CrossMatch
    """
    n = len(phot)
    ra, dec = column_values(phot, ra_col, "deg"), column_values(phot, dec_col, "deg")

    def err(name):
        if name is None or name not in phot.colnames:
            return np.full(n, default_error_arcsec)
        c = phot[name]
        v = column_values(phot, name, "arcsec" if c.unit is not None else None)
        return np.where(np.isfinite(v), v, default_error_arcsec)

    s_phot = np.sqrt(0.5 * (err(ra_err_col) ** 2 + err(dec_err_col) ** 2))
    gra, gdec, gsig_mas = propagate_gaia(gaia, epoch_yr)
    gsig = gsig_mas / 1000.0
    gid = np.asarray(gaia["source_id"], np.int64)
    ok_p = np.isfinite(ra) & np.isfinite(dec)
    ok_g = np.isfinite(gra) & np.isfinite(gdec)
    ip_idx, ig_idx = np.flatnonzero(ok_p), np.flatnonzero(ok_g)
    out = Table({"row": np.arange(n), "gaia_source_id": np.full(n, -1, np.int64),
                 "sep_arcsec": np.full(n, np.nan), "sep_sigma": np.full(n, np.nan),
                 "radius_arcsec": np.full(n, np.nan), "n_candidates": np.zeros(n, int),
                 "ambiguous": np.zeros(n, bool)})
    empty_amb = Table({"row": np.zeros(0, int), "gaia_source_id": np.zeros(0, np.int64),
                       "sep_arcsec": np.zeros(0), "sep_sigma": np.zeros(0),
                       "chosen": np.zeros(0, bool)})
    if len(ip_idx) and len(ig_idx):
        cp = SkyCoord(ra[ip_idx] * u.deg, dec[ip_idx] * u.deg)
        cg = SkyCoord(gra[ig_idx] * u.deg, gdec[ig_idx] * u.deg)
        a, b, sep, _ = search_around_sky(cp, cg, max_radius_arcsec * u.arcsec)
        p, g = ip_idx[a], ig_idx[b]
        sep = sep.to_value(u.arcsec)
        sig = np.hypot(s_phot[p], gsig[g])
        radius = np.clip(n_sigma * sig, min_radius_arcsec, max_radius_arcsec)
        keep = sep <= radius
        p, g, sep, sig, radius = p[keep], g[keep], sep[keep], sig[keep], radius[keep]
    else:
        p = g = np.zeros(0, int)
        sep = sig = radius = np.zeros(0)
    norm = sep / sig if len(sep) else np.zeros(0)
    np.add.at(out["n_candidates"], p, 1)
    g_claims = np.bincount(g, minlength=len(gaia)) if len(g) else np.zeros(len(gaia), int)
    used_p, used_g = np.zeros(n, bool), np.zeros(len(gaia), bool)
    chosen = np.zeros(len(p), bool)
    for k in np.argsort(norm, kind="stable"):
        if used_p[p[k]] or used_g[g[k]]:
            continue
        used_p[p[k]] = used_g[g[k]] = chosen[k] = True
        out["gaia_source_id"][p[k]] = gid[g[k]]
        out["sep_arcsec"][p[k]] = sep[k]
        out["sep_sigma"][p[k]] = norm[k]
        out["radius_arcsec"][p[k]] = radius[k]
    amb_pair = (out["n_candidates"][p] > 1) | (g_claims[g] > 1) if len(p) else np.zeros(0, bool)
    out["ambiguous"][p[amb_pair]] = True
    ambiguous = Table({"row": p[amb_pair], "gaia_source_id": gid[g[amb_pair]],
                       "sep_arcsec": sep[amb_pair], "sep_sigma": norm[amb_pair],
                       "chosen": chosen[amb_pair]}) if amb_pair.any() else empty_amb
    for c in ("sep_arcsec", "radius_arcsec"):
        out[c].unit = "arcsec"
    summary = {"n_sources": n, "n_gaia": len(gaia), "n_matched": int(used_p.sum()),
               "n_ambiguous_sources": int(out["ambiguous"].sum()), "epoch_yr": float(epoch_yr),
               "n_sigma": n_sigma, "min_radius_arcsec": min_radius_arcsec,
               "max_radius_arcsec": max_radius_arcsec,
               "method": "Gaia propagated to the epoch by proper motion; per-pair radius "
                         "n_sigma x combined error; greedy one-to-one by normalised separation"}
    return CrossMatch(out, ambiguous, summary)
