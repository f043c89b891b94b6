"""Calibrate one science frame: bias, scaled dark, flat, electrons, uncertainty, masks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy import units as u
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.stats import mad_std, sigma_clipped_stats

from tgpcore.calibration.cosmics import count_groups, detect_cosmic_rays
from tgpcore.calibration.detector import DetectorSetup, prepare, trim
from tgpcore.calibration.masters import CalibrationError, FrameInput
from tgpcore.calibration.morphology import grow_mask
from tgpcore.io.fits import (
    FLAG_BADPIX,
    FLAG_COSMIC,
    FLAG_NONFINITE,
    FLAG_SATURATED,
    provenance,
    read_raw,
)


@dataclass
class CalibratedFrame:
    """A calibrated frame (electrons), its bit flags, QC figures and notes."""

    ccd: CCDData
    flags: np.ndarray
    qc: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _check_master(master: CCDData | None, shape: tuple[int, int], what: str, path: str) -> None:
    if master is not None and master.data.shape != shape:
        raise CalibrationError(f"{path}: frame shape {shape} (after trim) differs from the "
                               f"master {what}'s {master.data.shape}")


def to_electrons(data: np.ndarray, setup: DetectorSetup, exptime_s: float,
                 bias: CCDData | None, dark: CCDData | None, flat: CCDData,
                 bias_weight: float = 1.0, rows: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Bias, gain, scaled dark and flat applied to ``data`` (ADU, trimmed) in place.

    Returns the variance (e-^2: read noise, Poisson noise of the detected charge, the masters'
    own noise, through the flat division) and where the flat is usable (> 0.05; elsewhere the
    pixel is left undivided). ``bias_weight`` scales the master bias's noise (see
    :func:`calibrate_frame`). Done ``rows`` rows at a time, so that the temporaries stay in the
    processor's cache instead of streaming a dozen full images through memory.
    """
    gain = np.float32(setup.gain_e_per_adu)
    rn2 = np.float32(setup.read_noise_e ** 2)
    bw, t = np.float32(bias_weight), np.float32(exptime_s)
    var = np.empty_like(data)
    safe = np.empty(data.shape, bool)

    def unc(master):
        return None if master is None or master.uncertainty is None else master.uncertainty.array

    def f32(master):
        return None if master is None else np.asarray(master.data, np.float32)

    bias_d, dark_d, flat_d = f32(bias), f32(dark), f32(flat)
    bias_unc, dark_unc, flat_unc = unc(bias), unc(dark), unc(flat)
    # Every operation writes into a chunk-sized buffer or into the output: no temporaries.
    vm_buf, tmp_buf, fl_buf = (np.empty((rows, data.shape[1]), np.float32) for _ in range(3))
    for r0 in range(0, data.shape[0], rows):
        sl = slice(r0, r0 + rows)
        d, v, ok = data[sl], var[sl], safe[sl]
        n = d.shape[0]
        vm, tmp, fl = vm_buf[:n], tmp_buf[:n], fl_buf[:n]
        vm.fill(0)                                  # the masters' own variance
        if bias_d is not None:
            d -= bias_d[sl]
            if bias_unc is not None:
                np.multiply(bias_unc[sl], gain, out=vm)
                vm *= bw
                np.square(vm, out=vm)
        d *= gain
        if dark_d is not None:
            # The master dark is a rate (e-/s): scaling it to this exposure is a product.
            np.multiply(dark_d[sl], t, out=tmp)
            d -= tmp
            if dark_unc is not None:
                np.multiply(dark_unc[sl], exptime_s, out=tmp)
                np.square(tmp, out=tmp)
                vm += tmp
        # Noise of the charge on the detector (before flat division): RN^2 + Poisson.
        np.maximum(d, 0.0, out=v)
        v += rn2
        v += vm
        np.greater(flat_d[sl], 0.05, out=ok)
        np.copyto(fl, flat_d[sl])
        np.copyto(fl, 1.0, where=~ok)
        d /= fl
        np.square(fl, out=tmp)
        v /= tmp
        if flat_unc is not None:
            np.multiply(d, flat_unc[sl], out=tmp)
            tmp /= fl
            np.square(tmp, out=tmp)
            v += tmp
    return var, safe


def calibrate_frame(frame: FrameInput, setup: DetectorSetup, bias: CCDData | None,
                    dark: CCDData | None, flat: CCDData | None,
                    cosmic_rays: bool = True, max_nonfinite_fraction: float = 0.01,
                    cr_params: dict | None = None) -> CalibratedFrame:
    """Calibrate one raw frame into electrons with an honest uncertainty and a mask.

    The steps: overscan and trim (if the profile gives sections), bias subtraction, conversion
    to electrons with the gain, subtraction of the master dark scaled to the exposure, division
    by the master flat, saturation / bad-pixel / cosmic-ray masks.

    Uncertainty (e-): read noise, Poisson noise of the detected charge, and the masters' own
    noise (bias, dark scaled to the exposure, flat), all propagated through the flat division.

    Raises
    ------
    CalibrationError
        With the file's path and the problem: shape differing from a master, too many
        non-finite pixels, no flat.
    """
    if flat is None:
        raise CalibrationError(f"{frame.path}: no master flat")
    raw, header = read_raw(frame.path, frame.hdu_index)
    nonfinite_raw = ~np.isfinite(raw)
    n_nonfinite = int(np.count_nonzero(nonfinite_raw))
    frac = n_nonfinite / raw.size
    if frac > max_nonfinite_fraction:
        raise CalibrationError(f"{frame.path}: {frac:.1%} of the pixels are NaN or infinite")
    if n_nonfinite:
        raw[nonfinite_raw] = 0.0  # read_raw's array is this function's own
    data, saturated, level = prepare(raw, setup)
    nonfinite = trim(nonfinite_raw, setup)
    shape = data.shape
    for master, what in ((bias, "bias"), (dark, "dark"), (flat, "flat")):
        _check_master(master, shape, what, frame.path)
    header = header.copy()
    notes: list[str] = []
    if setup.overscan:
        provenance(header, "overscan", f"subtracted {level:.2f} ADU; trimmed to {setup.trim}")
    t = float(frame.exptime_s)
    # The dark was made with the same master bias: subtracting s = t / t_dark of it gives back
    # s of the bias, so the bias's noise enters with weight (1 - s).
    s = t / float(dark.header.get("EXPTIME", t)) if dark is not None else 0.0
    var, safe = to_electrons(data, setup, t, bias, dark, flat, bias_weight=1.0 - s)
    if bias is not None:
        provenance(header, "bias", f"subtracted master bias {bias.header.get('TGPKEY', '')}")
    provenance(header, "gain", f"x {setup.gain_e_per_adu} e-/ADU: electrons")
    if dark is not None:
        provenance(header, "dark", f"subtracted master dark {dark.header.get('TGPKEY', '')} "
                                   f"(e-/s) x {t:g} s")
    provenance(header, "flat", f"divided by master flat {flat.header.get('TGPKEY', '')}")

    flags = np.zeros(shape, dtype=np.uint8)
    sat = grow_mask(saturated, 4) if saturated.any() else saturated
    np.bitwise_or(flags, FLAG_SATURATED, out=flags, where=sat)
    badpix = ~safe
    # A pixel that any master could not determine is masked in every frame that uses it.
    for master in (bias, dark, flat):
        if master is not None and master.mask is not None:
            badpix |= master.mask
    np.bitwise_or(flags, FLAG_BADPIX, out=flags, where=badpix)
    if n_nonfinite:
        np.bitwise_or(flags, FLAG_NONFINITE, out=flags, where=nonfinite)
    n_cr = n_cr_pixels = 0
    sigma = np.sqrt(var, out=np.empty(var.shape, ">f4"))  # big-endian: written as it is
    if cosmic_rays:
        cr = detect_cosmic_rays(data, flags > 0, setup.read_noise_e,
                                var_e=var, **(cr_params or {}))
        np.bitwise_or(flags, FLAG_COSMIC, out=flags, where=cr)
        n_cr, n_cr_pixels = count_groups(cr), int(np.count_nonzero(cr))
        provenance(header, "cosmic", f"{n_cr_pixels} pixels in {n_cr} cosmic-ray hits masked "
                                     "(L.A.Cosmic, stars spared, tracks grown)")
    mask = flags > 0
    if n_nonfinite:
        data[nonfinite] = 0.0
    header["BUNIT"] = "electron"
    header["GAIN"] = (1.0, "data are in electrons")
    header["RDNOISE"] = (setup.read_noise_e, "e-")
    header["EXPTIME"] = (t, "s")
    for a in setup.assumed:
        provenance(header, "assume", a)
    good = ~mask
    # QC figures from a grid of about 40 000 unmasked pixels: plenty for a sky level and noise
    # (0.5 % on the noise).
    step = max(1, int(np.sqrt(good.size / 40_000)))
    sample = data[::step, ::step][good[::step, ::step]]
    if sample.size <= 100:
        sample = data[good]
    if sample.size > 100:
        _, sky, _ = sigma_clipped_stats(sample, sigma=3.0, maxiters=5)
        noise = float(mad_std(sample))
    else:
        sky, noise = float("nan"), float("nan")
        notes.append("almost every pixel is masked")
    header["QCSKYRT"] = (round(float(sky) / t, 4) if t > 0 and np.isfinite(sky) else -1.0,
                         "QC: sky level (e-/s/px)")
    header["QCMASKF"] = (round(float(np.count_nonzero(mask)) / mask.size, 6),
                         "QC: fraction of pixels masked")
    header["QCCRPIX"] = (n_cr_pixels, "QC: cosmic-ray pixels masked")
    ccd = CCDData(data, unit=u.electron, header=header, mask=mask,
                  uncertainty=StdDevUncertainty(sigma))
    qc = {"sky_e": float(sky), "noise_e": noise,
          "sky_e_per_s": float(sky) / t if t > 0 else float("nan"),
          "cosmic_rays": float(n_cr), "cosmic_ray_pixels": float(n_cr_pixels),
          "saturated_fraction": np.count_nonzero(sat) / sat.size,
          "masked_fraction": np.count_nonzero(mask) / mask.size}
    return CalibratedFrame(ccd, flags, qc, notes)
