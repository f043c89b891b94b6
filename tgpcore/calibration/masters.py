"""Master bias, dark and flat frames, with their uncertainty and bad-pixel masks.

Before any rejection, each stack's noise is measured from its own frames (differences of
consecutive members, :mod:`tgpcore.calibration.noise`): the read noise of the biases, and for
darks and flats the scatter against the model of read noise and Poisson noise. Outliers are
rejected against the measured noise when the model disagrees with it by more than 10 %; the
header's value, the measured one and the one used are written in the master's header.

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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty
from scipy import ndimage

from tgpcore import robust
from tgpcore.calibration.combine import NoiseModel, _median0, clipped_mean
from tgpcore.calibration.detector import DetectorSetup
from tgpcore.calibration.members import CalibrationError, Members
from tgpcore.calibration.noise import NoiseCheck, check_noise
from tgpcore.io.fits import provenance, read_ccd

__all__ = ["CalibrationError", "FrameInput", "MasterResult", "build_master_bias",
           "build_master_dark", "build_master_flat", "load_master"]


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


def _open(frames: Sequence[FrameInput], setup: DetectorSetup) -> tuple[Members, list[str]]:
    """Map every member (checking they share one shape) and measure their overscan levels."""
    m = Members([f.path for f in frames], [f.hdu_index for f in frames], setup)
    notes = [f"{f.path}: overscan {lv:.2f} ADU" for f, lv in zip(frames, m.levels, strict=True)
             ] if setup.overscan else []
    return m, notes


# Every 23rd pixel of a frame (180 000 of a 2048^2 frame): ample for one robust figure per
# frame (a noise to 0.4 %, a median to about 1e-4), and a fifth of the work of every 5th.
_SAMPLE_STEP = 23


def _read_band(m: Members, correct: Callable[[np.ndarray, slice], None]
               ) -> Callable[[int, int], np.ndarray]:
    """``read(r0, r1)``: every member's corrected rows r0:r1 (members x rows x columns)."""
    def read(r0: int, r1: int) -> np.ndarray:
        band = np.empty((len(m.paths), r1 - r0, m.shape[1]), np.float32)
        for i in range(len(m.paths)):
            m.band(i, r0, r1, band[i])
        correct(band, slice(r0, r1))
        return band
    return read


def _checked_model(m: Members, correct: Callable[[np.ndarray, slice], None],
                   noise_model: NoiseModel, what: str) -> tuple[NoiseModel, NoiseCheck]:
    """The noise model scaled to the frames' measured scatter where the two disagree."""
    check = check_noise(_read_band(m, correct), m.shape, len(m.paths), noise_model,
                        _median0, what)
    if check.used_scale == 1.0:
        return noise_model, check
    k = np.float32(check.used_scale)
    return (lambda med: noise_model(med) * k), check


def _noise_cards(h: fits.Header, check: NoiseCheck) -> None:
    if check.measured:
        h["NOISESCL"] = (round(check.scale, 4), "measured / modelled scatter of the frames")
        h["NOISEUSE"] = (round(check.used_scale, 4), "noise-model factor used for rejection")


def _combine(m: Members, correct: Callable[[np.ndarray, slice], None],
             noise_model: NoiseModel, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sigma-clipped mean of the members, one band of rows at a time.

    ``correct(band, rows)`` corrects a band (members x rows x columns) in place. With
    ``threads`` > 1, that many threads share the bands (numpy releases the GIL in all the heavy
    work), each with its own band buffer; the result is the same.
    """
    n, (ny, nx) = len(m.paths), m.shape
    mean = np.empty((ny, nx), np.float32)
    n_used = np.empty((ny, nx), np.int16)

    def run(bands: list[tuple[int, int]]) -> None:
        buf = np.empty((n, m.band_rows(), nx), np.float32)
        for r0, r1 in bands:
            band = buf[:, :r1 - r0]
            for i in range(n):
                m.band(i, r0, r1, band[i])
            correct(band, slice(r0, r1))
            mean[r0:r1], n_used[r0:r1] = clipped_mean(band, noise_model=noise_model)

    bands = list(m.bands())
    threads = max(1, min(threads, len(bands)))
    if threads == 1:
        run(bands)
    else:
        with ThreadPoolExecutor(threads, thread_name_prefix="tgp-master") as pool:
            for fut in [pool.submit(run, bands[k::threads]) for k in range(threads)]:
                fut.result()
    return mean, n_used


def _sample_index(shape: tuple[int, int]) -> np.ndarray:
    """Flat indices of every ``_SAMPLE_STEP``-th pixel of an image of ``shape``."""
    return np.arange(0, shape[0] * shape[1], _SAMPLE_STEP)


def _header(kind: str, frames: Sequence[FrameInput], setup: DetectorSetup) -> fits.Header:
    h = fits.Header()
    h["IMAGETYP"] = (f"MASTER {kind.upper()}", "tgp master calibration frame")
    h["NCOMBINE"] = (len(frames), "frames combined")
    h["GAIN"] = (setup.gain_e_per_adu, "e-/ADU")
    h["RDNOISE"] = (setup.read_noise_e, "e-")
    for i, f in enumerate(frames[:999]):
        h[f"IMCMB{i + 1:03d}"] = f.path.rsplit("/", 1)[-1][:68]
    n = len(frames)
    rule = ("no rejection (one frame)" if n == 1 else
            "the higher value dropped where it exceeds the lower by more than 3 expected "
            "sigma" if n == 2 else
            "rejecting values more than 3 expected sigma from the median (ccdclip)")
    provenance(h, "combine", f"mean of {n} {kind} frames, {rule}; expected sigma: read noise + "
                             "Poisson, scaled to the frames' measured scatter")
    for a in setup.assumed:
        provenance(h, "assume", a)
    return h


def build_master_bias(frames: Sequence[FrameInput], setup: DetectorSetup,
                      threads: int = 1) -> MasterResult:
    """Combine biases (ADU). The uncertainty is the measured per-frame noise / sqrt(n used).

    ``threads``: threads sharing the combination, for a master built while nothing else can
    run (the master bias, which everything else needs): the same master, sooner.
    """
    if not frames:
        raise CalibrationError("no bias frames given")
    gain = setup.gain_e_per_adu
    m, notes = _open(frames, setup)
    with m:
        # The read noise, measured before anything is rejected: with a unit model, the
        # check's scale is each frame's scatter in ADU.
        check = check_noise(_read_band(m, lambda band, rows: None), m.shape, len(frames),
                            lambda med: np.float32(1.0), _median0, "biases")
        header_adu = setup.read_noise_e / gain
        if check.measured and check.scale > 0:
            sigma, source = check.scale, f"measured from {len(frames)} biases"
        else:
            sigma, source = header_adu, "header (one bias: nothing to measure)"
        sig = np.float32(sigma)
        mean, n_used = _combine(m, lambda band, rows: None, lambda med: sig, threads=threads)
    unc = (sigma / np.sqrt(np.maximum(n_used, 1))).astype(np.float32)
    h = _header("bias", frames, setup)
    rn_used = sigma * gain
    h["RNHDR"] = (setup.read_noise_e, "read noise in the frames' header (e-)")
    if check.measured:
        h["RNMEAS"] = (rn_used, "read noise measured from the biases (e-)")
    h["RNUSED"] = (rn_used, f"read noise used (e-): {source}"[:47])
    provenance(h, "bias", f"per-frame noise {sigma:.3f} ADU = {rn_used:.3f} e- ({source}); "
                          f"header says {setup.read_noise_e:.3f} e-")
    if check.measured and abs(rn_used / max(setup.read_noise_e, 1e-9) - 1) > 0.2:
        notes.append(f"read noise measured from the biases, {rn_used:.2f} e-, differs from "
                     f"the header's {setup.read_noise_e:.2f} e-: the measured value is used")
    ccd = CCDData(np.nan_to_num(mean), unit=u.adu, header=h, mask=n_used == 0,
                  uncertainty=StdDevUncertainty(unc))
    qc = {"level_adu": float(np.nanmedian(mean)), "noise_adu": sigma,
          "read_noise_header_e": setup.read_noise_e,
          "read_noise_measured_e": rn_used if check.measured else float("nan"),
          "read_noise_used_e": rn_used, "n_frames": len(frames)}
    return MasterResult(ccd, qc, notes)


def _master_rows(master: CCDData | None, shape: tuple[int, int], what: str,
                 kind: str) -> np.ndarray | None:
    """A master's pixels (float32), checked against the members' shape."""
    if master is None:
        return None
    if master.data.shape != shape:
        raise CalibrationError(f"master {what} shape {master.data.shape} differs from the "
                               f"{kind} frames' {shape}")
    return np.asarray(master.data, np.float32)


def build_master_dark(frames: Sequence[FrameInput], setup: DetectorSetup, bias: CCDData | None,
                      hot_sigma: float = 5.0, hot_min_rate: float = 0.25,
                      threads: int = 1) -> MasterResult:
    """Combine darks into a dark-current map in e-/s; flag hot pixels in its mask.

    A pixel is hot when its dark current exceeds the median by more than ``hot_sigma`` times
    its uncertainty and by more than ``hot_min_rate`` e-/s. ``threads``: see
    :func:`build_master_bias`.
    """
    if not frames:
        raise CalibrationError("no dark frames given")
    if any(f.exptime_s <= 0 for f in frames):
        raise CalibrationError("dark frames need a positive exposure time")
    t = np.array([f.exptime_s for f in frames], dtype=np.float32)[:, None, None]
    gain = np.float32(setup.gain_e_per_adu)
    rn2 = np.float32(setup.read_noise_e ** 2)

    def dark_noise(med: np.ndarray) -> np.ndarray:
        # each frame's noise in e-/s: read noise and the Poisson noise of the dark charge
        return np.sqrt(rn2 + np.maximum(med, 0)[None] * t) / t

    m, notes = _open(frames, setup)
    with m:
        b = _master_rows(bias, m.shape, "bias", "dark")

        def to_rate(band: np.ndarray, rows: slice) -> None:
            if b is not None:
                band -= b[rows][None]
            band *= gain
            band /= t

        model, check = _checked_model(m, to_rate, dark_noise, "darks")
        notes += check.notes
        mean, n_used = _combine(m, to_rate, model, threads=threads)
    mean = np.nan_to_num(mean)
    t_mean = float(t.mean())
    # Per-frame variance model (e-/s)^2: read noise + Poisson of the dark charge.
    var = (setup.read_noise_e ** 2 + np.maximum(mean, 0) * t_mean) / t_mean ** 2
    var *= check.used_scale ** 2       # the frames' measured scatter, where the model was off
    var /= np.maximum(n_used, 1)
    # The master bias's own noise is left out on purpose: it is shared with the frames this dark
    # calibrates and partly cancels there, so it is propagated at that step (apply.py).
    unc = np.sqrt(var).astype(np.float32)
    median = float(robust.median(mean))
    excess = mean - median
    hot = (excess > hot_sigma * unc) & (excess > hot_min_rate)
    h = _header("dark", frames, setup)
    _noise_cards(h, check)
    h["BUNIT"] = "electron / s"
    h["EXPTIME"] = (t_mean, "mean exposure of the combined darks (s)")
    provenance(h, "dark", f"bias subtracted, x gain {setup.gain_e_per_adu}, / exposure: e-/s")
    provenance(h, "uncertainty", "excludes the master bias's noise (propagated where used)")
    provenance(h, "badpix", f"{int(hot.sum())} hot pixels (> {hot_sigma} sigma and > "
                            f"{hot_min_rate} e-/s above the median)")
    ccd = CCDData(mean, unit=u.electron / u.s, header=h, mask=hot,
                  uncertainty=StdDevUncertainty(unc))
    qc = {"dark_median_e_per_s": median, "hot_pixels": int(hot.sum()),
          "n_frames": len(frames), "noise_scale": check.scale}
    return MasterResult(ccd, qc, notes)


def build_master_flat(frames: Sequence[FrameInput], setup: DetectorSetup, bias: CCDData | None,
                      dark: CCDData | None = None, nsigma: float = 9.0,
                      smooth: int = 15, threads: int = 1) -> MasterResult:
    """Combine flats of one filter into a flat normalised to median 1; flag bad pixels.

    Each flat is bias- (and dark-) corrected in electrons and divided by its own median before
    the sigma-clipped mean. As in ccdproc's ``ccdmask``, a pixel whose response differs from the
    local mean response (``smooth``-pixel box) by more than ``nsigma`` times the robust scatter
    of all pixels about their local mean is flagged (dead, low or hot column segments), as is
    any pixel with a response below 0.05. ``threads``: see :func:`build_master_bias`.
    """
    if not frames:
        raise CalibrationError("no flat frames given")
    gain = np.float32(setup.gain_e_per_adu)
    t = [np.float32(f.exptime_s) for f in frames]
    m, notes = _open(frames, setup)
    with m:
        b = _master_rows(bias, m.shape, "bias", "flat")
        d = _master_rows(dark, m.shape, "dark", "flat")

        def to_electrons(values: np.ndarray, bias_part, dark_part, times) -> None:
            """Bias- and dark-corrected electrons, in place: ``values`` is one frame's (with
            ``times`` its exposure alone) or a band of every member's."""
            if bias_part is not None:
                values -= bias_part
            values *= gain
            if dark_part is not None:
                for frame, tk in zip(values if values.ndim == 3 else [values], times, strict=True):
                    frame -= dark_part * tk

        # Each flat's level: the median of every 23rd pixel (within about 1e-4 of the whole
        # frame's median, ten times faster), read before the combination. Only the flats'
        # relative levels matter: the combined flat is normalised to its own median below.
        idx = _sample_index(m.shape)
        b_at = None if b is None else b.ravel()[idx]
        d_at = None if d is None else d.ravel()[idx]
        levels = np.empty(len(frames))
        for i in range(len(frames)):
            v = m.pixels(i, idx)
            to_electrons(v, b_at, d_at, [t[i]])
            levels[i] = np.median(v)
        if np.any(levels <= 0):
            bad = [frames[i].path for i in np.flatnonzero(levels <= 0)]
            raise CalibrationError(f"flat frames with no signal (median <= 0 e-): {bad}")
        lv = levels[:, None, None].astype(np.float32)
        rn2 = np.float32(setup.read_noise_e ** 2)

        def flat_noise(med: np.ndarray) -> np.ndarray:
            # each normalised flat's noise: Poisson of its charge and read noise, over its level
            return np.sqrt(np.maximum(med, 0)[None] * lv + rn2) / lv

        def normalised(band: np.ndarray, rows: slice) -> None:
            to_electrons(band, None if b is None else b[rows], None if d is None else d[rows],
                         t)
            band /= lv

        model, check = _checked_model(m, normalised, flat_noise, "flats")
        notes += check.notes
        mean, n_used = _combine(m, normalised, model, threads=threads)
    mean = np.nan_to_num(mean, nan=1.0)
    norm = float(robust.median(mean))
    flat = (mean / norm).astype(np.float32)
    # Variance of one normalised flat: (signal + RN^2) / level^2; the mean divides by n.
    level = float(levels.mean())
    var = (np.maximum(flat, 0) * level + setup.read_noise_e ** 2) / level ** 2
    var *= check.used_scale ** 2       # the frames' measured scatter, where the model was off
    var /= np.maximum(n_used, 1)
    if bias is not None and bias.uncertainty is not None:
        var += (bias.uncertainty.array * setup.gain_e_per_adu / level) ** 2
    unc = np.sqrt(var).astype(np.float32)
    # The local mean response leaves out pixels with no response: dead rows and columns (the
    # CAFOS window's first two rows read 0) would otherwise drag their neighbours' local mean
    # down and get the healthy rows next to them flagged as "high".
    live = (flat >= 0.05).astype(np.float32)
    num = ndimage.uniform_filter(np.where(live > 0, flat, 0.0).astype(np.float32), size=smooth,
                                 mode="reflect")
    den = ndimage.uniform_filter(live, size=smooth, mode="reflect")
    with np.errstate(invalid="ignore", divide="ignore"):
        local = np.where(den > 0.1, num / den, 0.0)
        ratio = np.where(local > 0, flat / local, 0.0)
    scatter = float(robust.mad_std(ratio[np.isfinite(ratio) & (flat > 0.05)]))
    badpix = (np.abs(ratio - 1.0) > nsigma * scatter) | (flat < 0.05) | (n_used == 0)
    h = _header("flat", frames, setup)
    _noise_cards(h, check)
    h["BUNIT"] = ""
    h["FLATLVL"] = (level, "mean level of the member flats (e-)")
    provenance(h, "flat", f"bias{' and dark' if dark is not None else ''} corrected, each "
                          "scaled to its median, normalised to median 1")
    provenance(h, "badpix", f"{int(badpix.sum())} dead/low/high pixels (response off the local "
                            f"{smooth}-px mean by > {nsigma:g} x {scatter:.4f})")
    ccd = CCDData(flat, unit=u.dimensionless_unscaled, header=h, mask=badpix,
                  uncertainty=StdDevUncertainty(unc))
    qc = {"flat_level_e": level, "bad_pixels": int(badpix.sum()), "n_frames": len(frames),
          "flat_noise_rel": float(robust.median(unc)), "noise_scale": check.scale}
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
