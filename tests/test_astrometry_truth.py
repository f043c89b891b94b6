"""Plate solving measured against the simulator's true WCS (tiny preset).

Tolerance: the solved WCS agrees with the true WCS to <= 0.1" RMS over the field, with the
position hint 19.8' off (14' in RA and in Dec); the solution carried to a frame through its
alignment agrees with that frame's true WCS to the same tolerance. A camera with optical
distortion (radial, 1.8 px at the corners of 512^2) is solved to <= 0.05" of its true TAN-SIP
WCS.
"""

from __future__ import annotations

import numpy as np
import pytest
from _astrometry import wcs_rms_vs_truth
from astropy.io import fits
from astropy.wcs import WCS

from tgpcore.astrometry import frame_wcs, solve_image
from tgpcore.astrometry.cascade import SolveRequest, solve
from tgpcore.registration import align_to_reference, make_stack, prepare_reference
from tgpcore.simulate import simulate_night, truth_wcs
from tgpcore.simulate.wcs import WCS_KEYS

from _calibrated import build_masters, calibrate_entries

pytestmark = pytest.mark.slow


def _first_pointing_stack(nt, root):
    """Calibrate, align and stack the science frames of the night's first pointing; return
    (those frames' rows, the aligned frames by file name, the stack, the reference's row)."""
    fr = nt.frames()
    grp = fr[(fr["kind"] == "science") & (fr["pointing_index"] == 0)]
    inv, plan, masters = build_masters(nt.raw_dir, root)
    res = calibrate_entries(inv, plan, masters, root, names=set(grp["filename"]))
    cal = {n: r["product"] for n, r in res.items()}
    ref = prepare_reference(list(cal.values()))
    al = {n: align_to_reference(cal[n], ref) for n in grp["filename"]}
    stack = make_stack(list(al.values()), ref["shape"], str(root / "stack.fits"))
    ref_row = grp[[cal[n] == ref["path"] for n in grp["filename"]]][0]
    return grp, al, stack, ref_row


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    root = tmp_path_factory.mktemp("astnight")
    nt = simulate_night(root / "night", preset="tiny", seed=5, filters=("V",), n_dither=3)
    grp, al, stack, ref_row = _first_pointing_stack(nt, root)
    dec0 = float(ref_row["dec_header_deg"])
    hint = (float(ref_row["ra_header_deg"]) + 14 / 60 / np.cos(np.radians(dec0)), dec0 - 14 / 60)
    out = solve_image(stack["path"], 0.5, *hint, reference=nt.gaia(),
                      steps=("header", "catalogue"))
    return nt, grp, ref_row, al, stack, out


def test_stack_wcs_matches_truth_with_20_arcmin_hint_error(solved):
    nt, grp, ref_row, al, stack, out = solved
    assert out["status"] == "ok", out["reason"]
    assert out["solver"] == "catalogue"
    assert out["n_matched"] >= 15
    assert out["rms_arcsec"] < 0.1
    w = WCS(fits.getheader(stack["path"]))
    rms = wcs_rms_vs_truth(w, truth_wcs(ref_row))
    print(f"solved: {out['n_matched']} stars, fit RMS {out['rms_arcsec']:.3f}\", "
          f"vs truth {rms:.4f}\" RMS, {out['attempts'][-1]['seconds']:.2f} s")
    assert rms <= 0.1


def test_solution_carried_to_frames_matches_truth(solved):
    nt, grp, ref_row, al, stack, out = solved
    for row in grp:
        hdr = frame_wcs(out, al[row["filename"]], (256, 256))
        assert wcs_rms_vs_truth(WCS(hdr), truth_wcs(row)) <= 0.1


def test_cascade_takes_a_valid_header_wcs_first(solved):
    nt, grp, ref_row, al, stack, out = solved
    again = solve_image(stack["path"], 0.5, None, None, reference=None)
    assert again["status"] == "ok" and again["solver"] == "header"


def test_cascade_records_each_failed_step(solved):
    nt, grp, ref_row, al, stack, out = solved
    hdr = fits.Header({"CTYPE1": "PIXEL"})
    req = SolveRequest(xy=np.zeros((0, 2)), shape=(256, 256), header=hdr, scale_arcsec=0.5)
    sol, attempts = solve(req, steps=("header", "catalogue", "solve-field"),
                          timeouts={"solve-field": 5})
    assert not sol.ok
    assert [a["solver"] for a in attempts] == ["header", "catalogue", "solve-field"]
    assert all(a["reason"] for a in attempts)


def test_solve_field_absent_is_skipped_cleanly():
    from tgpcore.astrometry.solvefield import solve_field

    req = SolveRequest(xy=np.zeros((10, 2)), shape=(256, 256), header=fits.Header(),
                       scale_arcsec=0.5)
    sol = solve_field(req, executable="no-such-solve-field-binary")
    assert not sol.ok and "not installed" in sol.reason


def test_large_image_detected_binned_solves_at_full_accuracy(tmp_path):
    """A 2048^2 image (the stack benchmark's synthetic field: 0.5"/px, hint 5' off) is searched
    2x2-binned for speed; the centroids are refined at full resolution, so the WCS still
    agrees with the truth to <= 0.1" RMS and most detections match the catalogue."""
    import sys
    from pathlib import Path

    from tgpcore.astrometry.products import detect_for_solving
    from tgpcore.io.fits import read_ccd

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_stack as b

    (path,), cat = b.make_frames(tmp_path, 1, 2048)
    ccd = read_ccd(path)
    binned = detect_for_solving(ccd.data, ccd.mask, 3.5, 4.0)
    plain = detect_for_solving(ccd.data, ccd.mask, 3.5, 4.0, bin_min_px=10**6)
    assert len(binned) >= 0.9 * len(plain)
    hint_ra = b.RA0 + 5 / 60 / np.cos(np.radians(b.DEC0))
    from astropy.table import Table

    sol = solve_image(path, b.SCALE, hint_ra, b.DEC0, reference=Table(cat),
                      steps=("catalogue",), write=False)
    assert sol["status"] == "ok", sol["reason"]
    true = WCS(naxis=2)
    true.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    true.wcs.crval = [b.RA0, b.DEC0]
    true.wcs.crpix = [2048 / 2 + 0.5, 2048 / 2 + 0.5]
    true.wcs.cd = np.array([[-b.SCALE / 3600, 0], [0, b.SCALE / 3600]])
    w = WCS(fits.Header.fromstring(sol["wcs_header"], sep="\n"))
    rms = wcs_rms_vs_truth(w, true, shape=(2048, 2048))
    print(f"2048^2 binned detection: {len(binned)} stars (full-res search {len(plain)}), "
          f"{sol['n_matched']} matched, WCS vs truth {rms:.4f}\"")
    assert rms <= 0.1 and sol["n_matched"] >= 100


DISTORTION_K3 = 0.005  # 512^2 at 0.5"/px: the corners move by 1.8 px (0.9")


@pytest.fixture(scope="module")
def distorted(tmp_path_factory):
    """A 512^2 camera with radial distortion; the V stack of the first pointing."""
    root = tmp_path_factory.mktemp("distorted")
    nt = simulate_night(root / "night", preset="tiny", seed=5, filters=("V",), n_dither=3,
                        distortion_k3=DISTORTION_K3, nx=512, ny=512)
    _, _, stack, ref_row = _first_pointing_stack(nt, root)
    return nt, ref_row, stack["path"]


def test_simulated_distortion_moves_the_corners_by_k3(distorted):
    """The truth WCS of the distorted camera is TAN-SIP: a star at a corner of the detector is
    imaged k3 r_corner from where the undistorted camera would put it (radially), and the
    rendered stars sit where that WCS says."""
    nt, row, _ = distorted
    w = truth_wcs(row)
    assert w.sip is not None and w.sip.a_order == 3
    plain = truth_wcs({k: row[k] for k in WCS_KEYS})
    centre = np.array([row["distortion_x0"], row["distortion_y0"]]) - 1.0  # 0-based
    corner = np.array([0.0, 0.0])
    ra, dec = plain.wcs_pix2world([corner[0]], [corner[1]], 0)
    x, y = w.all_world2pix(ra, dec, 0)
    # D(p) = p (1 + k3 |p|^2 / r^2): an ideal-camera offset q is imaged at p with D(p) = q
    # (relative to CRPIX's own displacement, which is small: CRPIX is within a few px of
    # the centre)
    p = np.array([x[0], y[0]]) - centre
    q = corner - centre
    r = float(row["distortion_r_px"])
    shift = np.hypot(*q) - np.hypot(*p)
    assert shift == pytest.approx(DISTORTION_K3 * np.hypot(*p) ** 3 / r**2, abs=0.05)
    assert 1.5 < shift < 2.0
    src = nt.sources()
    src = src[src["filename"] == row["filename"]]
    st = nt.stars()
    idx = {int(s): k for k, s in enumerate(st["star_id"])}
    k = [idx[int(s)] for s in src["star_id"]]
    from tgpcore.simulate.render import positions_at_epoch
    ra, dec = positions_at_epoch(st[k], row["epoch_jyear"])
    px, py = w.all_world2pix(ra, dec, 0)
    assert np.max(np.hypot(px - src["x"], py - src["y"])) < 1e-3


def test_distortion_fitted_to_the_truth(distorted):
    """Tolerance: the solved WCS agrees with the true (TAN-SIP) WCS to <= 0.05" RMS over the
    field, corners included. A plain TAN fit of the same stars is 0.18" off (measured), and
    the solver before issue 20 (SIP degree 2 above 40 stars) 0.17": the test has teeth."""
    nt, row, path = distorted
    sol = solve_image(path, 0.5, float(row["ra_header_deg"]), float(row["dec_header_deg"]),
                      reference=nt.gaia(), steps=("catalogue",), write=False)
    assert sol["status"] == "ok", sol["reason"]
    w = WCS(fits.Header.fromstring(sol["wcs_header"], sep="\n"))
    rms = wcs_rms_vs_truth(w, truth_wcs(row), shape=(512, 512))
    tan = solve_image(path, 0.5, float(row["ra_header_deg"]), float(row["dec_header_deg"]),
                      reference=nt.gaia(), steps=("catalogue",), write=False,
                      options={"catalogue": {"sip_degree": 1}})
    rms_tan = wcs_rms_vs_truth(WCS(fits.Header.fromstring(tan["wcs_header"], sep="\n")),
                               truth_wcs(row), shape=(512, 512))
    print(f"distorted camera: {sol['n_matched']} stars, SIP degree {sol['sip_degree']}, fit "
          f"RMS {sol['rms_arcsec']:.4f}\", vs truth {rms:.4f}\" (TAN only: {rms_tan:.4f}\"); "
          f"leave-one-out {sol['cv_arcsec']}")
    assert sol["sip_degree"] == 3
    assert rms <= 0.05
    assert rms_tan > 0.1
