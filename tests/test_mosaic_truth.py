"""Mosaic of two solved pointing stacks (tiny preset), measured against truth.

Tolerances: stars in the overlap of the two pointings, measured on each pointing reprojected
onto the mosaic grid, agree to <= 0.1" RMS; mosaic star positions agree with the true
positions to <= 0.15" RMS; coverage counts both pointings in the overlap.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from reproject import reproject_interp

from tgpcore.astrometry import solve_image
from tgpcore.io.fits import read_ccd
from tgpcore.registration import align_to_reference, make_stack, prepare_reference
from tgpcore.registration.mosaic import make_mosaic
from tgpcore.registration.stars import detect_stars
from tgpcore.registration.vote import match_nearest
from tgpcore.simulate import positions_at_epoch, simulate_night

from _calibrated import build_masters, calibrate_entries

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    root = tmp_path_factory.mktemp("mosnight")
    nt = simulate_night(root / "night", preset="tiny", seed=8, filters=("V",), n_dither=2)
    fr = nt.frames()
    sci = fr[fr["kind"] == "science"]
    inv, plan, masters = build_masters(nt.raw_dir, root)
    res = calibrate_entries(inv, plan, masters, root, names=set(sci["filename"]))
    stacks = []
    for k in sorted(set(sci["pointing_index"])):
        grp = sci[sci["pointing_index"] == k]
        paths = [res[n]["product"] for n in grp["filename"]]
        ref = prepare_reference(paths)
        st = make_stack([align_to_reference(p, ref) for p in paths], ref["shape"],
                        str(root / f"p{k}.fits"))
        sol = solve_image(st["path"], 0.5, float(grp["ra_header_deg"][0]),
                          float(grp["dec_header_deg"][0]), reference=nt.gaia(),
                          steps=("catalogue",))
        assert sol["status"] == "ok", sol["reason"]
        stacks.append(st["path"])
    out = make_mosaic(stacks, root / "mosaic_V.fits", label="SIM-NGC1/V")
    return nt, sci, stacks, out


def test_mosaic_products(mosaic):
    nt, sci, stacks, out = mosaic
    with fits.open(out["path"]) as hdul:
        assert {"UNCERT", "MASK", "FLAGS", "WEIGHT", "COVERAGE"} <= {h.name for h in hdul}
        cov = hdul["COVERAGE"].data
    assert cov.max() == 2 and (cov == 1).any()
    assert out["qc"]["overlap_fraction"] > 0.2


def test_overlap_star_positions_consistent(mosaic):
    nt, sci, stacks, out = mosaic
    mos = read_ccd(out["path"])
    wm = WCS(mos.header)
    pos = []
    for p in stacks:
        ccd = read_ccd(p)
        img, fp = reproject_interp((np.where(ccd.mask, 0.0, ccd.data), WCS(ccd.header)), wm,
                                   shape_out=mos.shape)
        st = detect_stars(np.nan_to_num(img), ~(fp > 0.99), max_stars=300)
        pos.append(np.column_stack([st["x"], st["y"]]))
    i, j = match_nearest(pos[0], pos[1], 1.0)
    assert len(i) >= 15
    scale = 3600.0 * np.sqrt(abs(np.linalg.det(wm.pixel_scale_matrix)))
    d = np.hypot(*(pos[0][i] - pos[1][j]).T) * scale
    rms = float(np.sqrt(np.mean(d**2)))
    print(f"overlap: {len(i)} stars, {rms:.4f}\" RMS between pointings")
    assert rms <= 0.1
    # and against the true positions at the epoch of the frames
    st = detect_stars(mos.data, mos.mask, max_stars=400)
    stars = nt.stars()
    ra, dec = positions_at_epoch(stars, float(sci["epoch_jyear"][0]))
    tx, ty = wm.all_world2pix(ra, dec, 0)
    inside = (tx > 0) & (ty > 0) & (tx < mos.shape[1]) & (ty < mos.shape[0])
    k, m = match_nearest(np.column_stack([st["x"], st["y"]])[:80],
                         np.column_stack([tx[inside], ty[inside]]), 0.6)
    d = np.hypot(st["x"][:80][k] - tx[inside][m], st["y"][:80][k] - ty[inside][m]) * scale
    print(f"mosaic vs truth: {len(k)} stars, {np.sqrt(np.mean(d**2)):.4f}\" RMS")
    assert len(k) >= 20 and np.sqrt(np.mean(d**2)) <= 0.15
