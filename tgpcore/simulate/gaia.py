"""A synthetic Gaia DR3-like catalogue of the simulated stars.

Errors follow G in the way of the Gaia DR3 performance figures (parallax error ~0.02 mas at
G = 15, ~0.5 mas at G = 20; proper-motion errors ~1.1 times larger in mas/yr), observed values
scatter about the truth by those errors, and RUWE is ~1.0 ± 0.08 except for some unresolved
binaries and a few other sources (> 1.4). Membership is not in this catalogue.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

_MAS_PER_DEG = 3.6e6


def parallax_error_mas(g: np.ndarray) -> np.ndarray:
    """Parallax uncertainty (mas) as a function of G (Gaia science-performance formula,
    scaled to DR3: 0.02 mas at G=15, 0.5 mas at G=20, floor at G=13)."""
    z = 10.0 ** (0.4 * (np.maximum(np.asarray(g, float), 13.0) - 15.0))
    return 0.8e-3 * np.sqrt(-1.631 + 680.766 * z + 32.732 * z**2)


def synthesize_gaia(stars: Table, rng: np.random.Generator, g_limit: float = 20.5) -> Table:
    """Observe the true stars with Gaia: ``source_id`` equals the truth ``star_id``.

    Parameters
    ----------
    stars : astropy.table.Table
        The truth star table (``stars.ecsv``; G, BP, RP, astrometry at epoch 2016.0).
    rng : numpy.random.Generator
        Random generator.
    g_limit : float
        Faintest observed G kept.

    Returns
    -------
    astropy.table.Table
        DR3 column names: ``source_id ra dec ra_error dec_error parallax parallax_error
        pmra pmra_error pmdec pmdec_error ruwe phot_g_mean_mag phot_bp_mean_mag
        phot_rp_mean_mag bp_rp ref_epoch`` (+ ``phot_*_mean_mag_error``); positions in
        degrees, errors of positions in mas.
    """
    n = len(stars)
    g_true = np.asarray(stars["G"], float)
    sig_plx = parallax_error_mas(g_true) * rng.lognormal(0.0, 0.1, n)
    sig_pmra = 1.1 * sig_plx * rng.lognormal(0.0, 0.08, n)
    sig_pmdec = 1.0 * sig_plx * rng.lognormal(0.0, 0.08, n)
    sig_ra = 0.8 * sig_plx * rng.lognormal(0.0, 0.08, n)
    sig_dec = 0.7 * sig_plx * rng.lognormal(0.0, 0.08, n)
    f20 = 10.0 ** (0.4 * (g_true - 20.0))
    sig_g = 0.0003 + 0.004 * f20
    sig_bp = 0.002 + 0.05 * f20
    sig_rp = 0.002 + 0.035 * f20
    dec_true = np.asarray(stars["dec"], float)
    dec = dec_true + rng.normal(0.0, sig_dec) / _MAS_PER_DEG
    ra = np.asarray(stars["ra"], float) + rng.normal(0.0, sig_ra) / _MAS_PER_DEG / np.cos(
        np.radians(dec_true))
    gmag = g_true + rng.normal(0.0, sig_g)
    bp = np.asarray(stars["BP"], float) + rng.normal(0.0, sig_bp)
    rp = np.asarray(stars["RP"], float) + rng.normal(0.0, sig_rp)
    ruwe = rng.lognormal(0.0, 0.08, n)
    wobbly = (np.asarray(stars["is_binary"], bool) & (np.asarray(stars["q"], float) > 0.4)
              & (rng.random(n) < 0.3)) | (rng.random(n) < 0.01)
    ruwe[wobbly] = rng.uniform(1.4, 4.0, int(wobbly.sum()))
    t = Table()
    t["source_id"] = np.asarray(stars["star_id"], np.int64)
    t["ra"], t["dec"] = ra, dec
    t["ra"].unit = t["dec"].unit = "deg"
    t["ra_error"], t["dec_error"] = sig_ra, sig_dec
    t["parallax"] = np.asarray(stars["parallax_mas"], float) + rng.normal(0.0, sig_plx)
    t["parallax_error"] = sig_plx
    t["pmra"] = np.asarray(stars["pmra_masyr"], float) + rng.normal(0.0, sig_pmra)
    t["pmra_error"] = sig_pmra
    t["pmdec"] = np.asarray(stars["pmdec_masyr"], float) + rng.normal(0.0, sig_pmdec)
    t["pmdec_error"] = sig_pmdec
    for c in ("ra_error", "dec_error", "parallax", "parallax_error"):
        t[c].unit = "mas"
    for c in ("pmra", "pmra_error", "pmdec", "pmdec_error"):
        t[c].unit = "mas / yr"
    t["ruwe"] = ruwe
    t["phot_g_mean_mag"], t["phot_g_mean_mag_error"] = gmag, sig_g
    t["phot_bp_mean_mag"], t["phot_bp_mean_mag_error"] = bp, sig_bp
    t["phot_rp_mean_mag"], t["phot_rp_mean_mag_error"] = rp, sig_rp
    t["bp_rp"] = bp - rp
    for c in t.colnames:
        if c.startswith("phot_") or c == "bp_rp":
            t[c].unit = "mag"
    t["ref_epoch"] = np.full(n, 2016.0)
    t["ref_epoch"].unit = "yr"
    t = t[gmag <= g_limit]
    t.meta["description"] = "synthetic Gaia DR3-like catalogue (tgpcore.simulate)"
    return t
