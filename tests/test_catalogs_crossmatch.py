"""Cross-match of a photometric catalogue to Gaia, on simulated stars with known identities.

Tolerances: every isolated star matches its own Gaia source; a star whose proper motion moved
it ~1.5" since 2016 matches only after epoch propagation; a close pair is flagged ambiguous.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from tgpcore.catalogs import crossmatch_to_gaia, propagate_gaia

MAS = 1.0 / 3.6e6


def _gaia(n: int = 400, seed: int = 1) -> Table:
    rng = np.random.default_rng(seed)
    t = Table({"source_id": np.arange(1000, 1000 + n, dtype=np.int64),
               "ra": 120.0 + rng.uniform(-0.05, 0.05, n), "dec": 20.0 + rng.uniform(-0.05, 0.05, n),
               "ra_error": np.full(n, 0.1), "dec_error": np.full(n, 0.1),
               "pmra": rng.normal(0, 5, n), "pmdec": rng.normal(0, 5, n),
               "pmra_error": np.full(n, 0.1), "pmdec_error": np.full(n, 0.1),
               "ref_epoch": np.full(n, 2016.0)})
    t["ra"].unit = t["dec"].unit = "deg"
    return t


def _observe(gaia: Table, epoch: float, sigma_arcsec: float, seed: int = 2) -> Table:
    rng = np.random.default_rng(seed)
    ra, dec, _ = propagate_gaia(gaia, epoch)
    n = len(gaia)
    e = sigma_arcsec / 3600.0
    return Table({"ra": ra + rng.normal(0, e, n) / np.cos(np.radians(dec)),
                  "dec": dec + rng.normal(0, e, n),
                  "ra_err": np.full(n, sigma_arcsec), "dec_err": np.full(n, sigma_arcsec)})


def test_every_star_matches_itself_after_propagation():
    gaia = _gaia()
    gaia["pmra"][0], gaia["pmdec"][0] = 150.0, -100.0  # moves 1.5" in 8 yr
    phot = _observe(gaia, 2024.0, 0.1)
    xm = crossmatch_to_gaia(phot, gaia, 2024.0, max_radius_arcsec=2.0)
    assert xm.summary["n_matched"] == len(gaia)
    assert np.all(xm.matches["gaia_source_id"] == gaia["source_id"])
    assert np.median(xm.matches["sep_sigma"]) < 1.5
    # without propagation (Gaia epoch taken as the observation epoch) the fast star is lost
    stale = crossmatch_to_gaia(phot, gaia, 2016.0, max_radius_arcsec=2.0)
    assert stale.matches["gaia_source_id"][0] != gaia["source_id"][0]


def test_close_pair_is_one_to_one_and_recorded_ambiguous():
    gaia = _gaia(50)
    gaia["ra"][1] = gaia["ra"][0] + 0.4 / 3600.0 / np.cos(np.radians(gaia["dec"][0]))
    gaia["dec"][1] = gaia["dec"][0]
    gaia["pmra"][:2] = gaia["pmdec"][:2] = 0.0
    phot = _observe(gaia, 2016.0, 0.05)[:1]  # only the first of the pair was detected
    phot["ra_err"][0] = phot["dec_err"][0] = 0.3
    xm = crossmatch_to_gaia(phot, gaia, 2016.0)
    assert xm.matches["n_candidates"][0] == 2 and xm.matches["ambiguous"][0]
    assert xm.matches["gaia_source_id"][0] == gaia["source_id"][0]
    assert len(xm.ambiguous) == 2 and xm.ambiguous["chosen"].sum() == 1


def test_two_sources_never_share_a_gaia_star_and_far_ones_stay_unmatched():
    gaia = _gaia(20)
    phot = _observe(gaia, 2016.0, 0.05)[:2]
    phot["ra"][1], phot["dec"][1] = phot["ra"][0], phot["dec"][0] + 0.1 / 3600.0
    far = Table({"ra": [121.0], "dec": [21.0], "ra_err": [0.1], "dec_err": [0.1]})
    from astropy.table import vstack

    xm = crossmatch_to_gaia(vstack([phot, far]), gaia, 2016.0)
    ids = list(xm.matches["gaia_source_id"])
    assert ids[0] == gaia["source_id"][0] and ids[1] != ids[0] and ids[2] == -1
    assert xm.matches["ambiguous"][0] and xm.matches["ambiguous"][1]


def test_stars_without_proper_motion_get_a_wider_radius():
    gaia = _gaia(5)
    gaia["pmra"] = np.ma.masked_array(gaia["pmra"], mask=[True, False, False, False, False])
    _, _, sig = propagate_gaia(gaia, 2026.0)
    assert sig[0] > 50 * sig[1]  # 10 mas/yr unknown-pm error over 10 yr vs 1 mas
