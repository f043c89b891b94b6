"""Calibration measured against the simulator's truth (tolerances stated per test)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from tgpcore.io.fits import FLAG_COSMIC, read_ccd, read_flags
from tgpcore.simulate import render_signal, simulate_night

from _calibrated import build_masters, calibrate_entries, calibrated_night


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return calibrated_night(tmp_path_factory.mktemp("tiny"), preset="tiny", seed=11)


@pytest.fixture(scope="module")
def demo_masters(tmp_path_factory):
    """The demo preset's masters (10 biases, 3+3 darks at 60/300 s, 5 flats per filter)."""
    root = tmp_path_factory.mktemp("demo")
    truth = simulate_night(root / "night", preset="demo", seed=5, workers=2)
    inv, plan, masters = build_masters(truth.raw_dir, root / "out")
    return truth, plan, masters


@pytest.mark.slow
def test_master_flat_matches_true_flat(demo_masters):
    """Master flat vs true flat: <= 0.3 % RMS over good pixels (demo: 5 flats per filter)."""
    truth, plan, masters = demo_masters
    dead = truth.image("dead_pixels") > 0
    for key, spec in plan.masters.items():
        if spec.kind != "flat":
            continue
        ours = read_ccd(masters[key])
        true = truth.flat(spec.filter)
        good = ~dead & ~ours.mask
        ratio = ours.data[good] / true[good]
        ratio /= np.median(ratio)
        rms = float(np.std(ratio - 1))
        assert rms <= 0.003, (spec.filter, rms)
        # the propagated uncertainty of the master flat is honest too (within 15 %)
        pull = (ours.data[good] / np.median(ours.data[good] / true[good]) - true[good])
        assert np.std(pull / ours.uncertainty.array[good]) == pytest.approx(1.0, abs=0.15)
        # dead and low-response pixels are masked (>= 95 %), few good ones (< 0.1 %)
        assert ours.mask[dead].mean() >= 0.95, spec.filter
        assert ours.mask[~dead].mean() < 1e-3, spec.filter


@pytest.mark.slow
def test_master_dark_matches_truth_and_finds_hot_pixels(demo_masters):
    """Dark current within its noise (normalised residual std 0.85-1.15, bias < 0.1 sigma);
    hot pixels found at >= 95 % with < 0.05 % false hot pixels."""
    truth, plan, masters = demo_masters
    true_dark = truth.image("dark_current")
    hot_true = truth.image("hot_pixels") > 0
    hot_found = np.zeros_like(hot_true)
    for key, spec in plan.masters.items():
        if spec.kind != "dark":
            continue
        ours = read_ccd(masters[key])
        assert ours.unit.to_string() == "electron / s"
        # The dark's UNCERT leaves out the master bias's noise (it is propagated where the dark
        # is used); against the truth, that noise is part of the error.
        bias = read_ccd(masters[spec.depends["bias"]])
        gain = ours.header["GAIN"]
        sigma = np.hypot(ours.uncertainty.array,
                         bias.uncertainty.array * gain / ours.header["EXPTIME"])
        pull = (ours.data - true_dark) / sigma
        cold = ~hot_true
        assert 0.85 <= np.std(pull[cold]) <= 1.15, (key, np.std(pull[cold]))
        assert abs(np.mean(pull[cold])) < 0.1, (key, np.mean(pull[cold]))
        hot_found |= ours.mask
    assert hot_found[hot_true].mean() >= 0.95
    assert hot_found[~hot_true].mean() < 5e-4


def test_calibrated_uncertainties_are_honest(tiny):
    """(calibrated - true signal) / uncertainty has std in [0.9, 1.1] over unmasked pixels."""
    truth, plan, masters, results = tiny
    assert results and all(r["status"] == "ok" for r in results.values())
    for name, res in results.items():
        ccd = read_ccd(res["product"])
        signal_e = render_signal(truth, name)
        good = ~ccd.mask
        pull = (ccd.data[good] - signal_e[good]) / ccd.uncertainty.array[good]
        assert 0.9 <= np.std(pull) <= 1.1, (name, np.std(pull))
        assert abs(np.median(pull)) < 0.1, (name, np.median(pull))


def test_cosmic_rays_masked_and_star_cores_spared(tiny):
    """Injected cosmic-ray pixels above 5 sigma: >= 95 % masked; star-core pixels wrongly
    flagged as cosmic rays: < 0.1 % (both the issue's targets).

    Measured on this night: 95.7 % and 0.035 % (``benchmarks/measure_cosmics.py``, which
    counts a core pixel wrong unless it is itself a cosmic-ray pixel: 95.7 % and 0.071 %;
    seed 12: 98.4 % and 0.098 %). L.A.Cosmic alone (astroscrappy, niter=2, objlim=5,
    reflective padding, Poisson and read noise) gave 93.8 % and 0.77 %: it misses the faint
    middles of long tracks (grown back along the track), flags the cores of undersampled and
    crowded stars (spared when their neighbours rise like a PSF, allowing for the whole core
    having been flagged), and, with a noise model of Poisson and read noise only, took noise
    peaks of low-sky frames for hits (0.11 % of sky pixels, many of them "cores" of stars
    fainter than the noise); L.A.Cosmic now uses the frame's propagated variance (0.003 % of
    sky pixels). Flags only mask pixels (the data are kept), and the stack rejects outliers
    across dithers.
    """
    truth, plan, masters, results = tiny
    sources = truth.sources()
    hit = strong = core_total = core_wrong = 0
    for name, res in results.items():
        ccd = read_ccd(res["product"])
        flags = read_flags(res["product"])
        crmask, crpix = truth.cosmic_rays(name)
        flat = truth.flat(str(truth.frame(name)["filter"]))
        sigma = ccd.uncertainty.array
        x, y = np.asarray(crpix["x"]), np.asarray(crpix["y"])
        above = crpix["charge_e"] / flat[y, x] > 5 * sigma[y, x]
        strong += int(above.sum())
        hit += int(ccd.mask[y[above], x[above]].sum())
        # star cores: pixels within 1.5 px of the centre of unsaturated stars
        src = sources[(sources["filename"] == name) & ~sources["saturated"]]
        yy, xx = np.mgrid[-2:3, -2:3]
        inner = (xx ** 2 + yy ** 2) <= 1.5 ** 2
        ny, nx = ccd.data.shape
        for sx, sy in zip(np.round(src["x"]).astype(int), np.round(src["y"]).astype(int),
                          strict=True):
            py, px = sy + yy[inner], sx + xx[inner]
            ok = (px >= 0) & (px < nx) & (py >= 0) & (py < ny)
            py, px = py[ok], px[ok]
            core_total += len(px)
            core_wrong += int(((flags[py, px] & FLAG_COSMIC) > 0).sum()
                              - (crmask[py, px] > 0).sum().clip(0))
    assert strong > 200, "the tiny preset injects enough cosmic rays to test"
    assert hit / strong >= 0.95, (hit, strong)
    print(f"cosmic rays: {hit / strong:.4f} of {strong} pixels masked; star-core pixels wrongly "
          f"flagged {core_wrong / core_total:.5f} ({core_wrong}/{core_total})")
    assert core_wrong / core_total < 0.001, (core_wrong, core_total)


def test_frame_of_other_shape_and_nan_frame_are_rejected(tmp_path):
    """A frame of another shape is refused by the plan with its reason; a NaN-filled frame is
    rejected at calibration; the other frames are calibrated."""
    truth = simulate_night(tmp_path / "night", preset="tiny", seed=2)
    sci = [r for r in truth.frames() if r["kind"] == "science"]
    src = truth.raw_path(sci[0])
    with fits.open(src) as hdul:
        hdr = hdul[0].header.copy()
        data = hdul[0].data
    small = data[:100, :120]
    hdr2 = hdr.copy()
    hdr2["TRIMSEC"] = "[1:104,1:100]"
    hdr2["BIASSEC"] = "[105:120,1:100]"
    fits.PrimaryHDU(small, header=hdr2).writeto(truth.raw_dir / "zz_small.fits")
    nan = np.full(data.shape, np.nan, dtype=np.float32)
    hdr3 = hdr.copy()
    for k in ("BZERO", "BSCALE", "BLANK"):
        hdr3.remove(k, ignore_missing=True)
    fits.PrimaryHDU(nan, header=hdr3).writeto(truth.raw_dir / "zz_nan.fits")
    inv, plan, masters = build_masters(truth.raw_dir, tmp_path / "out")
    entries = {Path(e.path).name: e for e in plan.entries}
    assert entries["zz_small.fits"].status == "refused"
    assert "matching" in entries["zz_small.fits"].reason
    assert "120x100" in entries["zz_small.fits"].reason
    results = calibrate_entries(inv, plan, masters, tmp_path / "out")
    assert results["zz_nan.fits"]["status"] == "rejected"
    assert "NaN" in results["zz_nan.fits"]["reason"]
    assert "zz_nan.fits" in results["zz_nan.fits"]["reason"]
    ok = [n for n, r in results.items() if r["status"] == "ok"]
    assert len(ok) == len([r for r in truth.frames() if r["kind"] in ("science", "standard")])
    assert not (tmp_path / "out" / "calibrated" / "zz_nan.fits").exists()


def test_killed_writer_leaves_no_half_written_fits(tmp_path):
    """SIGKILL during a product write: the final path is absent (or complete), never partial."""
    final = tmp_path / "calibrated" / "big.fits"
    code = (
        "import numpy as np, sys\n"
        "from astropy.nddata import CCDData, StdDevUncertainty\n"
        "from tgpcore.io.fits import write_ccd\n"
        "a = np.ones((4096, 4096), np.float32)\n"
        "ccd = CCDData(a, unit='electron', uncertainty=StdDevUncertainty(a), mask=a > 2)\n"
        "print('ready', flush=True)\n"
        f"write_ccd(ccd, {str(final)!r}, flags=np.zeros(a.shape, np.uint8))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout.readline().strip() == b"ready"
    deadline = time.time() + 30
    while time.time() < deadline and not any(final.parent.glob(".big.*")):
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not final.exists(), "the final path appeared although the writer was killed"
    # a complete write, by contrast, is there and whole
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   cwd=Path(__file__).resolve().parents[1])
    with fits.open(final) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "UNCERT", "MASK", "FLAGS"]
        assert hdul["FLAGS"].data.shape == (4096, 4096)
