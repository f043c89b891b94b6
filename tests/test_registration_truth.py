"""Registration and stacking measured against the simulator's truth (tiny preset).

Tolerances: transform vs truth <= 0.05 px RMS over the field for dithers rotated up to 1 deg;
stack noise vs propagated uncertainty within 10 %, and of sums over 8x8 pixels vs the summed
uncertainty times the stack's resampling factor (VARSUMF) within 15 %; the stack is unbiased
to 0.1 sigma.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tgpcore.io.fits import read_ccd
from tgpcore.registration import (
    align_to_reference,
    exposure_classes,
    make_stack,
    prepare_reference,
    read_exposure_map,
)
from tgpcore.registration import transform as tf
from tgpcore.registration.resample import warp
from tgpcore.simulate import render_signal, simulate_night, truth_wcs

from _calibrated import build_masters, calibrate_entries

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A tiny night with 4 dithers rotated by up to 1 deg, B and V, calibrated."""
    root = tmp_path_factory.mktemp("regnight")
    nt = simulate_night(root / "night", preset="tiny", seed=11, n_dither=4, filters=("B", "V"),
                        dither_max_rotation_deg=1.0, dither_max_px=8.0)
    fr = nt.frames()
    sci = fr[fr["kind"] == "science"]
    inv, plan, masters = build_masters(nt.raw_dir, root)
    res = calibrate_entries(inv, plan, masters, root, names=set(sci["filename"]))
    cal = {n: r["product"] for n, r in res.items() if r["status"] == "ok"}
    return nt, sci, cal, root


def _truth_matrix_rms(row, ref_row, matrix) -> float:
    w, wref = truth_wcs(row), truth_wcs(ref_row)
    gx, gy = np.meshgrid(np.linspace(0, 255, 16), np.linspace(0, 255, 16))
    g = np.column_stack([gx.ravel(), gy.ravel()])
    true = np.array(wref.wcs_world2pix(*w.wcs_pix2world(g[:, 0], g[:, 1], 0), 0)).T
    return float(np.sqrt(np.mean(np.sum((true - tf.apply(np.asarray(matrix), g)) ** 2, 1))))


def test_alignment_matches_truth(night):
    nt, sci, cal, _ = night
    p0 = sci[sci["pointing_index"] == 0]
    ref = prepare_reference([cal[n] for n in p0["filename"]])
    ref_row = p0[[cal[n] == ref["path"] for n in p0["filename"]]][0]
    assert np.max(np.abs(p0["rotation_deg"] - ref_row["rotation_deg"])) > 0.3
    errs = []
    for row in p0:  # both filters against the one reference of the pointing
        a = align_to_reference(cal[row["filename"]], ref)
        assert a["status"] == "ok", a["reason"]
        errs.append(_truth_matrix_rms(row, ref_row, a["matrix"]))
        assert a["residual_rms_px"] < 0.15
        assert a["n_matched"] >= 10
    print(f"alignment vs truth: max {max(errs):.4f} px RMS over {len(errs)} frames")
    assert max(errs) <= 0.05, errs


def test_stack_noise_and_bias_against_truth(night, tmp_path):
    nt, sci, cal, _ = night
    grp = sci[(sci["pointing_index"] == 0) & (sci["filter"] == "V")]
    ref = prepare_reference([cal[n] for n in sci[sci["pointing_index"] == 0]["filename"]])
    al = [align_to_reference(cal[n], ref) for n in grp["filename"]]
    out = make_stack(al, ref["shape"], str(tmp_path / "V.fits"), label="SIM/p0/V")
    assert out["status"] == "ok" and len(out["members"]) == len(grp)
    stack = read_ccd(out["path"])
    assert stack.unit.to_string() == "electron / s"
    expmap = read_exposure_map(out["path"])
    total = float(np.sum(grp["exptime_s"]))
    assert expmap.max() == pytest.approx(total)
    # The noiseless expectation, resampled and weighted exactly as the stack was.
    w = {f["path"]: f["weight"] for f in out["frames"]}
    expect = np.zeros(stack.shape)
    for row, a in zip(grp, al, strict=True):
        sig = render_signal(nt, row) / row["exptime_s"]
        d, _, _ = warp(sig, np.ones_like(sig), np.zeros(sig.shape, bool), np.asarray(a["matrix"]),
                       stack.shape)
        expect += w[a["path"]] * d
    full = (expmap == total) & ~stack.mask
    faint = full & (expect < np.median(expect[full]) + 10 * np.median(stack.uncertainty.array))
    chi = (stack.data - expect)[faint] / stack.uncertainty.array[faint]
    assert faint.sum() > 20000
    std = 1.4826 * np.median(np.abs(chi - np.median(chi)))
    print(f"stack chi: robust std {std:.3f}, median {np.median(chi):.3f}, n={faint.sum()}")
    assert 0.9 <= std <= 1.1, std
    assert abs(np.median(chi)) < 0.1
    clipped = [f["clipped_fraction"] for f in out["frames"]]
    assert max(clipped) < 0.01
    # Sums over areas (apertures): resampling correlates neighbouring pixels' noise, so the
    # variance of a sum is the sum of the pixel variances times the stack's VARSUMF card.
    fsum = float(stack.header["VARSUMF"])
    L = 8
    ny, nx = stack.shape
    res_s, var_s = [], []
    for y0 in range(0, ny - L + 1, L):
        for x0 in range(0, nx - L + 1, L):
            box = (slice(y0, y0 + L), slice(x0, x0 + L))
            if faint[box].all():
                res_s.append(float(np.sum((stack.data - expect)[box])))
                var_s.append(float(np.sum(stack.uncertainty.array[box] ** 2)))
    z = np.asarray(res_s) / np.sqrt(np.asarray(var_s))
    ratio = float(np.var(z))
    print(f"{L}x{L} box sums: variance / summed pixel variances {ratio:.3f} "
          f"(VARSUMF {fsum:.3f}, {len(z)} boxes)")
    assert len(z) > 300 and fsum > 1.2
    assert 0.85 <= ratio / fsum <= 1.15


def test_short_and_long_exposures_are_kept_apart():
    classes = exposure_classes({"a": 2.0, "b": 3.0, "c": 60.0, "d": 60.0})
    assert classes == {"a": "short", "b": "short", "c": "long", "d": "long"}
    assert set(exposure_classes({"a": 20.0, "b": 30.0}).values()) == {"long"}


def test_unalignable_frame_is_rejected_and_stack_goes_on(night, tmp_path):
    nt, sci, cal, _ = night
    grp = sci[(sci["pointing_index"] == 0) & (sci["filter"] == "B")]
    ref = prepare_reference([cal[n] for n in grp["filename"]])
    blank = read_ccd(cal[grp["filename"][0]])
    rng = np.random.default_rng(1)
    blank.data = rng.normal(10.0, 3.0, blank.shape).astype(np.float32)
    from tgpcore.io.fits import write_ccd
    bad_path = str(write_ccd(blank, tmp_path / "noise.fits"))
    al = [align_to_reference(p, ref) for p in [*(cal[n] for n in grp["filename"]), bad_path]]
    assert al[-1]["status"] == "rejected" and al[-1]["reason"]
    out = make_stack(al, ref["shape"], str(tmp_path / "B.fits"))
    assert out["status"] == "ok"
    assert list(out["rejected"]) == [bad_path]
    assert len(out["members"]) == len(grp)
    assert Path(out["path"]).exists()
