"""Master bias, dark and flat frames, with their uncertainty and bad-pixel masks.

- Master bias (ADU): overscan-subtracted, trimmed biases, sigma-clipped mean.
- Master dark (e-/s): bias-subtracted darks in electrons divided by their exposure time,
  sigma-clipped mean. Hot pixels (dark current well above the median) go into its mask.
- Master flat (normalised to median 1): bias- and dark-corrected flats in electrons, each
  scaled to its median, sigma-clipped mean. Dead and low pixels go into its mask.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.stats import mad_std
from scipy import ndimage

from tgpcore.calibration.combine import clipped_mean
from tgpcore.calibration.detector import DetectorSetup, prepare
from tgpcore.io.fits import provenance, read_ccd, read_raw


class CalibrationError(ValueError):
    """A frame or master cannot be calibrated; the message names the file and the problem."""


@dataclass
class FrameInput:
    """What a master or a calibration step needs to know of one raw frame."""

    path: str
    hdu_index: int
    exptime_s: float
    summary: dict[str, Any]

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> FrameInput:
        """From an inventory record (``FrameRecord`` as a dict)."""
        return cls(path=rec["path"], hdu_index=int(rec.get("hdu_index") or 0),
                   exptime_s=float(rec.get("exptime_s") or 0.0), summary=rec["header"])


@dataclass
class MasterResult:
    """A master frame and what was learnt while building it."""

    ccd: CCDData
    qc: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _load(frames: Sequence[FrameInput], setup: DetectorSetup) -> tuple[np.ndarray, list[str]]:
    """Read, overscan-subtract and trim every member; check they share one shape."""
    stack, notes = None, []
    for i, f in enumerate(frames):
        raw, _ = read_raw(f.path, f.hdu_index)
        data, _, level = prepare(raw, setup)
        if stack is None:
            stack = np.empty((len(frames), *data.shape), np.float32)
        elif data.shape != stack.shape[1:]:
            raise CalibrationError(f"{f.path}: shape {data.shape} differs from the other "
                                   f"members' {stack.shape[1:]}")
        if not np.isfinite(data).all():
            raise CalibrationError(f"{f.path}: {int((~np.isfinite(data)).sum())} non-finite "
                                   "pixels in a calibration frame")
        stack[i] = data
        if setup.overscan:
            notes.append(f"{f.path}: overscan {level:.2f} ADU")
    return stack, notes


def _header(kind: str, frames: Sequence[FrameInput], setup: DetectorSetup) -> fits.Header:
    h = fits.Header()
    h["IMAGETYP"] = (f"MASTER {kind.upper()}", "tgp master calibration frame")
    h["NCOMBINE"] = (len(frames), "frames combined")
    h["GAIN"] = (setup.gain_e_per_adu, "e-/ADU")
    h["RDNOISE"] = (setup.read_noise_e, "e-")
    for i, f in enumerate(frames[:999]):
        h[f"IMCMB{i + 1:03d}"] = f.path.rsplit("/", 1)[-1][:68]
    provenance(h, "combine", f"mean of {len(frames)} {kind} frames, rejecting values more than "
                             "3 expected sigma (read noise + Poisson) from the median (ccdclip)")
    for a in setup.assumed:
        provenance(h, "assume", a)
    return h


def frame_noise_adu(stack: np.ndarray, mean: np.ndarray) -> float:
    """Typical per-frame pixel noise (robust), from the scatter of frames about their mean."""
    n = stack.shape[0]
    if n < 2:
        return float("nan")
    # every 23rd pixel of each frame (180 000 of a 2048^2 frame): ample for one robust noise
    # figure per frame (0.4 % relative error), and a fifth of the work of every 5th
    sample = mean.ravel()[::23]
    per_frame = [mad_std(stack[i].ravel()[::23] - sample, ignore_nan=True) for i in range(n)]
    return float(np.median(per_frame) * np.sqrt(n / (n - 1)))


def build_master_bias(frames: Sequence[FrameInput], setup: DetectorSetup) -> MasterResult:
    """Combine biases (ADU). The uncertainty is the measured per-frame noise / sqrt(n used)."""
    if not frames:
        raise CalibrationError("no bias frames given")
    stack, notes = _load(frames, setup)
    rn_adu = np.float32(setup.read_noise_e / setup.gain_e_per_adu)
    mean, n_used = clipped_mean(stack, noise_model=lambda med: rn_adu)
    sigma = frame_noise_adu(stack, mean)
    if not np.isfinite(sigma):
        sigma = setup.read_noise_e / setup.gain_e_per_adu
        notes.append("one bias only: its noise is taken from the read noise")
    unc = (sigma / np.sqrt(np.maximum(n_used, 1))).astype(np.float32)
    h = _header("bias", frames, setup)
    h["RNMEAS"] = (sigma * setup.gain_e_per_adu, "read noise measured from biases (e-)")
    provenance(h, "bias", f"per-frame noise {sigma:.3f} ADU = "
                          f"{sigma * setup.gain_e_per_adu:.3f} e-")
    ccd = CCDData(np.nan_to_num(mean), unit=u.adu, header=h, mask=n_used == 0,
                  uncertainty=StdDevUncertainty(unc))
    qc = {"level_adu": float(np.nanmedian(mean)), "noise_adu": sigma,
          "read_noise_measured_e": sigma * setup.gain_e_per_adu, "n_frames": len(frames)}
    return MasterResult(ccd, qc, notes)


def _subtract_bias(stack: np.ndarray, bias: CCDData | None, what: str) -> np.ndarray:
    """``stack`` minus the master bias, in place (a stack is hundreds of MB)."""
    if bias is None:
        return stack
    if bias.data.shape != stack.shape[1:]:
        raise CalibrationError(f"master bias shape {bias.data.shape} differs from the {what} "
                               f"frames' {stack.shape[1:]}")
    stack -= np.asarray(bias.data, np.float32)[None]
    return stack


def build_master_dark(frames: Sequence[FrameInput], setup: DetectorSetup, bias: CCDData | None,
                      hot_sigma: float = 5.0, hot_min_rate: float = 0.25) -> MasterResult:
    """Combine darks into a dark-current map in e-/s; flag hot pixels in its mask.

    A pixel is hot when its dark current exceeds the median by more than ``hot_sigma`` times
    its uncertainty and by more than ``hot_min_rate`` e-/s.
    """
    if not frames:
        raise CalibrationError("no dark frames given")
    if any(f.exptime_s <= 0 for f in frames):
        raise CalibrationError("dark frames need a positive exposure time")
    stack, notes = _load(frames, setup)
    stack = _subtract_bias(stack, bias, "dark")
    t = np.array([f.exptime_s for f in frames], dtype=np.float32)[:, None, None]
    rate = stack
    rate *= np.float32(setup.gain_e_per_adu)
    rate /= t
    rn2 = np.float32(setup.read_noise_e ** 2)

    def dark_noise(med: np.ndarray) -> np.ndarray:
        # each frame's noise in e-/s: read noise and the Poisson noise of the dark charge
        return np.sqrt(rn2 + np.maximum(med, 0)[None] * t) / t

    mean, n_used = clipped_mean(rate, noise_model=dark_noise)
    mean = np.nan_to_num(mean)
    t_mean = float(t.mean())
    # Per-frame variance model (e-/s)^2: read noise + Poisson of the dark charge.
    var = (setup.read_noise_e ** 2 + np.maximum(mean, 0) * t_mean) / t_mean ** 2
    var /= np.maximum(n_used, 1)
    # The master bias's own noise is left out on purpose: it is shared with the frames this dark
    # calibrates and partly cancels there, so it is propagated at that step (apply.py).
    unc = np.sqrt(var).astype(np.float32)
    median = float(np.median(mean))
    excess = mean - median
    hot = (excess > hot_sigma * unc) & (excess > hot_min_rate)
    h = _header("dark", frames, setup)
    h["BUNIT"] = "electron / s"
    h["EXPTIME"] = (t_mean, "mean exposure of the combined darks (s)")
    provenance(h, "dark", f"bias subtracted, x gain {setup.gain_e_per_adu}, / exposure: e-/s")
    provenance(h, "uncertainty", "excludes the master bias's noise (propagated where used)")
    provenance(h, "badpix", f"{int(hot.sum())} hot pixels (> {hot_sigma} sigma and > "
                            f"{hot_min_rate} e-/s above the median)")
    ccd = CCDData(mean, unit=u.electron / u.s, header=h, mask=hot,
                  uncertainty=StdDevUncertainty(unc))
    qc = {"dark_median_e_per_s": median, "hot_pixels": int(hot.sum()),
          "n_frames": len(frames)}
    return MasterResult(ccd, qc, notes)


def build_master_flat(frames: Sequence[FrameInput], setup: DetectorSetup, bias: CCDData | None,
                      dark: CCDData | None = None, nsigma: float = 9.0,
                      smooth: int = 15) -> MasterResult:
    """Combine flats of one filter into a flat normalised to median 1; flag bad pixels.

    Each flat is bias- (and dark-) corrected in electrons and divided by its own median before
    the sigma-clipped mean. As in ccdproc's ``ccdmask``, a pixel whose response differs from the
    local mean response (``smooth``-pixel box) by more than ``nsigma`` times the robust scatter
    of all pixels about their local mean is flagged (dead, low or hot column segments), as is
    any pixel with a response below 0.05.
    """
    if not frames:
        raise CalibrationError("no flat frames given")
    stack, notes = _load(frames, setup)
    stack = _subtract_bias(stack, bias, "flat")
    stack *= np.float32(setup.gain_e_per_adu)
    if dark is not None:
        if dark.data.shape != stack.shape[1:]:
            raise CalibrationError(f"master dark shape {dark.data.shape} differs from the flat "
                                   f"frames' {stack.shape[1:]}")
        for i, f in enumerate(frames):
            stack[i] -= np.asarray(dark.data, np.float32) * np.float32(f.exptime_s)
    # Each flat's level: the median of every 23rd pixel (180 000 of a 2048^2 frame, within
    # about 1e-4 of the whole frame's median, ten times faster). Only the flats' relative
    # levels matter: the combined flat is normalised to its own median below.
    levels = np.array([np.median(s.ravel()[::23]) for s in stack])
    if np.any(levels <= 0):
        bad = [frames[i].path for i in np.flatnonzero(levels <= 0)]
        raise CalibrationError(f"flat frames with no signal (median <= 0 e-): {bad}")
    lv = levels[:, None, None].astype(np.float32)
    normed = stack
    normed /= lv
    rn2 = np.float32(setup.read_noise_e ** 2)

    def flat_noise(med: np.ndarray) -> np.ndarray:
        # each normalised flat's noise: Poisson of its charge and read noise, over its level
        return np.sqrt(np.maximum(med, 0)[None] * lv + rn2) / lv

    mean, n_used = clipped_mean(normed, noise_model=flat_noise)
    mean = np.nan_to_num(mean, nan=1.0)
    norm = float(np.median(mean))
    flat = (mean / norm).astype(np.float32)
    # Variance of one normalised flat: (signal + RN^2) / level^2; the mean divides by n.
    level = float(levels.mean())
    var = (np.maximum(flat, 0) * level + setup.read_noise_e ** 2) / level ** 2
    var /= np.maximum(n_used, 1)
    if bias is not None and bias.uncertainty is not None:
        var += (bias.uncertainty.array * setup.gain_e_per_adu / level) ** 2
    unc = np.sqrt(var).astype(np.float32)
    local = ndimage.uniform_filter(flat, size=smooth, mode="reflect")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(local > 0, flat / local, 0.0)
    scatter = float(mad_std(ratio[np.isfinite(ratio) & (flat > 0.05)]))
    badpix = (np.abs(ratio - 1.0) > nsigma * scatter) | (flat < 0.05) | (n_used == 0)
    h = _header("flat", frames, setup)
    h["BUNIT"] = ""
    h["FLATLVL"] = (level, "mean level of the member flats (e-)")
    provenance(h, "flat", f"bias{' and dark' if dark is not None else ''} corrected, each "
                          "scaled to its median, normalised to median 1")
    provenance(h, "badpix", f"{int(badpix.sum())} dead/low/high pixels (response off the local "
                            f"{smooth}-px mean by > {nsigma:g} x {scatter:.4f})")
    ccd = CCDData(flat, unit=u.dimensionless_unscaled, header=h, mask=badpix,
                  uncertainty=StdDevUncertainty(unc))
    qc = {"flat_level_e": level, "bad_pixels": int(badpix.sum()), "n_frames": len(frames),
          "flat_noise_rel": float(np.median(unc))}
    return MasterResult(ccd, qc, notes)


def load_master(path: str | None) -> CCDData | None:
    """Read a master written by the calibration stage (None passes through).

    A worker calibrates many frames against the same few masters, and the frames of a night
    come in every filter in turn: the masters read last are kept, up to ``TGP_MASTER_CACHE_MB``
    (default 512) of pixels per process, keyed by path, size and modification time (so a
    rewritten master is read again). A night's six 2048^2 masters are 216 MB; with room for
    only four, the bench night's two workers read masters 56 times instead of 12. Callers must
    not modify the returned arrays.
    """
    if not path:
        return None
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _CACHE_LOCK:
        ccd = _CACHE.get(key)
        if ccd is not None:
            _CACHE.move_to_end(key)
            return ccd
    ccd = read_ccd(path)
    for a in (ccd.data, ccd.mask, getattr(ccd.uncertainty, "array", None)):
        if a is not None:
            a.flags.writeable = False
    with _CACHE_LOCK:
        _CACHE[key] = ccd
        limit = float(os.environ.get("TGP_MASTER_CACHE_MB", "512")) * 2**20
        while len(_CACHE) > 1 and sum(_nbytes(c) for c in _CACHE.values()) > limit:
            _CACHE.popitem(last=False)
    return ccd


def _nbytes(ccd: CCDData) -> int:
    return sum(a.nbytes for a in (ccd.data, ccd.mask, getattr(ccd.uncertainty, "array", None))
               if a is not None)


_CACHE: OrderedDict[tuple[str, int, int], CCDData] = OrderedDict()
_CACHE_LOCK = threading.Lock()
