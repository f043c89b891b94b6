"""The night's calibrated catalogue matched to Gaia: our U, B, V beside Gaia's astrometry, its
photometry and each star's membership probability.

This is the table the cluster's parameters are fitted to (our photometry), with Gaia's
parallaxes for the distance prior and the membership probabilities as weights. The match is
:func:`tgpcore.catalogs.crossmatch.crossmatch_to_gaia` (Gaia positions moved to the epoch of
the observation, a radius from both position errors, one to one); the probabilities come from
a membership table joined on ``source_id`` (the membership stage's ``members.ecsv``, or a
published list), or by position when the membership table has no Gaia identifiers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, Table

from tgpcore.catalogs.crossmatch import crossmatch_to_gaia

#: Gaia columns copied into the matched catalogue (when the reference table has them).
GAIA_COLUMNS: tuple[str, ...] = (
    "parallax", "parallax_error", "pmra", "pmra_error", "pmdec", "pmdec_error", "ruwe",
    "phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "bp_rp",
    "phot_g_mean_flux_over_error", "phot_bp_mean_flux_over_error",
    "phot_rp_mean_flux_over_error", "nu_eff_used_in_astrometry", "pseudocolour", "ecl_lat",
    "astrometric_params_solved", "radial_velocity")


def _ids(table: Table, column: str = "source_id") -> np.ndarray:
    col = table[column]
    return np.asarray(np.ma.filled(np.ma.asarray(col), -1), dtype=np.int64)


def membership_of(matched_ids: np.ndarray, ra: np.ndarray, dec: np.ndarray,
                  members: Table, radius_arcsec: float = 1.0) -> tuple[np.ndarray, str]:
    """Each star's membership probability from a membership table.

    By ``source_id`` when both sides have Gaia identifiers (a star matched to Gaia but absent
    from the table gets 0: a member list names its members); by position otherwise (within
    ``radius_arcsec``, nearest). Stars with neither get NaN: unknown.

    Returns
    -------
    p, how : ndarray, str
    """
    n = len(matched_ids)
    p = np.full(n, np.nan)
    prob = np.asarray(np.ma.filled(np.ma.asarray(members["p_member"], float), np.nan))
    if "source_id" in members.colnames:
        mid = _ids(members)
        lookup = dict(zip(mid.tolist(), prob.tolist(), strict=True))
        has = matched_ids >= 0
        p[has] = [lookup.get(int(s), 0.0) for s in matched_ids[has]]
        return p, "joined on Gaia source_id"
    if not {"ra", "dec"} <= set(members.colnames):
        return p, "membership table has neither source_id nor positions"
    ours = SkyCoord(ra * u.deg, dec * u.deg)
    theirs = SkyCoord(np.asarray(members["ra"], float) * u.deg,
                      np.asarray(members["dec"], float) * u.deg)
    idx, sep, _ = ours.match_to_catalog_sky(theirs)
    ok = sep.arcsec <= radius_arcsec
    p[ok] = prob[idx[ok]]
    return p, f"matched by position within {radius_arcsec:g}\""


def match_catalogue(calibrated: Table, gaia: Table, epoch_yr: float,
                    members: Table | None = None, **match_kw: Any) -> tuple[Table, dict]:
    """Cross-match a calibrated catalogue to a Gaia table and attach memberships.

    Parameters
    ----------
    calibrated : astropy.table.Table
        The night's calibrated catalogue (``id``, ``ra``, ``dec``, magnitudes and flags).
    gaia : astropy.table.Table
        Gaia table with archive column names (a cone, or a published member list).
    epoch_yr : float
        Epoch of the observation (Julian year).
    members : astropy.table.Table, optional
        A membership table with ``p_member`` (and ``source_id`` or positions); without one, a
        ``p_member`` column of ``gaia`` is used if present.
    **match_kw
        Passed to :func:`~tgpcore.catalogs.crossmatch.crossmatch_to_gaia`.

    Returns
    -------
    table, summary
        The calibrated catalogue with ``source_id`` (-1 unmatched), ``gaia_sep_arcsec``,
        ``gaia_ambiguous``, the Gaia columns of :data:`GAIA_COLUMNS` (masked where
        unmatched) and ``p_member`` (NaN where unknown); and counts and methods.
    """
    cm = crossmatch_to_gaia(calibrated, gaia, epoch_yr, **match_kw)
    out = calibrated.copy()
    m = cm.matches
    sid = np.asarray(m["gaia_source_id"], np.int64)
    matched = sid >= 0
    out["source_id"] = sid
    out["source_id"].description = "Gaia source_id of the one-to-one match (-1: none)"
    out["gaia_sep_arcsec"] = MaskedColumn(np.asarray(m["sep_arcsec"], float), mask=~matched,
                                          unit=u.arcsec)
    out["gaia_ambiguous"] = np.asarray(m["ambiguous"], bool)
    gid = _ids(gaia)
    row_of = {int(s): i for i, s in enumerate(gid)}
    rows = np.array([row_of.get(int(s), -1) for s in sid])
    for c in GAIA_COLUMNS:
        if c not in gaia.colnames:
            continue
        src = gaia[c]
        vals = np.ma.filled(np.ma.asarray(src, float), np.nan)
        col = np.full(len(out), np.nan)
        col[matched] = vals[rows[matched]]
        out[c] = MaskedColumn(col, mask=~matched | ~np.isfinite(col),
                              unit=getattr(src, "unit", None))
    mem = members
    if mem is None and "p_member" in gaia.colnames:
        mem = gaia
    if mem is not None:
        p, how = membership_of(sid, np.asarray(out["ra"], float), np.asarray(out["dec"], float),
                               mem)
    else:
        p, how = np.full(len(out), np.nan), "no membership table"
    out["p_member"] = p
    out["p_member"].description = f"cluster membership probability ({how}; NaN: unknown)"
    summary = {**cm.summary, "n_stars": len(out), "n_matched": int(matched.sum()),
               "n_ambiguous": int(np.asarray(m["ambiguous"], bool).sum()),
               "n_with_membership": int(np.isfinite(p).sum()),
               "n_members_p50": int(np.nansum(p > 0.5)), "membership": how,
               "epoch_yr": float(epoch_yr)}
    out.meta["crossmatch"] = summary
    return out, summary
