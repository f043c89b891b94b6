"""Detector facts for one frame, and the first steps on its raw pixels (overscan, trim)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tgpcore.io.header import parse_section


@dataclass(frozen=True)
class DetectorSetup:
    """Gain, read noise, saturation and sections of a frame.

    Sections are IRAF-style 1-based inclusive ``(x1, x2, y1, y2)``, or None.
    """

    gain_e_per_adu: float
    read_noise_e: float
    saturation_adu: float
    overscan: tuple[int, int, int, int] | None = None
    trim: tuple[int, int, int, int] | None = None
    assumed: tuple[str, ...] = ()

    @classmethod
    def from_summary(cls, summary: dict[str, Any], default_read_noise_e: float | None = None
                     ) -> DetectorSetup:
        """Build from a normalised header summary (``HeaderSummary.to_dict()``).

        A missing gain is taken as 1 e-/ADU and a missing read noise as ``default_read_noise_e``
        (measured from the biases) or 0; both are listed in ``assumed`` for the record.
        """
        assumed = []
        gain = summary.get("gain_e_per_adu")
        if not gain or gain <= 0:
            gain, _ = 1.0, assumed.append("gain=1 e-/ADU (no gain keyword)")
        rn = summary.get("read_noise_e")
        if rn is None or rn < 0:
            rn = default_read_noise_e if default_read_noise_e is not None else 0.0
            assumed.append(f"read noise={rn:.2f} e- (no read-noise keyword)")
        sat = summary.get("saturation_adu") or 65535.0
        overscan = parse_section(summary.get("overscan_section"))
        trim = parse_section(summary.get("trim_section"))
        return cls(float(gain), float(rn), float(sat), overscan, trim, tuple(assumed))


def reconcile_read_noise(setup: DetectorSetup, measured_e: float | None,
                         tolerance: float = 0.2) -> tuple[DetectorSetup, str | None]:
    """Prefer the read noise measured from the biases when the header's is off by > tolerance.

    Returns the setup to use and a note when the measured value replaced the header's.
    """
    if measured_e is None or not np.isfinite(measured_e) or measured_e <= 0:
        return setup, None
    if abs(measured_e - setup.read_noise_e) <= tolerance * max(setup.read_noise_e, 1e-9):
        return setup, None
    note = (f"read noise measured from the biases, {measured_e:.2f} e-, differs from the "
            f"header's {setup.read_noise_e:.2f} e- by more than {tolerance:.0%}: using the "
            "measured value")
    return replace(setup, read_noise_e=float(measured_e),
                   assumed=setup.assumed + (note,)), note


def section_slices(section: tuple[int, int, int, int]) -> tuple[slice, slice]:
    """Numpy (row, column) slices of a 1-based inclusive IRAF section."""
    x1, x2, y1, y2 = section
    return slice(y1 - 1, y2), slice(x1 - 1, x2)


def overscan_level(raw: np.ndarray, overscan: tuple[int, int, int, int]) -> float:
    """Overscan level (ADU): the median of each row of the overscan, fitted by a constant.

    This is ccdproc's ``subtract_overscan(median=True, model=Polynomial1D(0))``: the row
    medians reject cosmic rays and hot columns, the constant averages the read noise down.
    """
    rows, cols = section_slices(overscan)
    region = raw[rows, cols]
    if region.size == 0:
        raise ValueError(f"overscan section {overscan} is empty for an image of shape "
                         f"{raw.shape}")
    return region_level(region)


def region_level(region: np.ndarray) -> float:
    """The level of an overscan region (rows x columns): the mean of its row medians."""
    return float(np.mean(np.median(region, axis=1)))


def trim(array: np.ndarray, setup: DetectorSetup) -> np.ndarray:
    """The imaging area of an array of the raw frame's shape (itself without a trim section)."""
    if not setup.trim:
        return array
    rows, cols = section_slices(setup.trim)
    return array[rows, cols]


def prepare(raw: np.ndarray, setup: DetectorSetup) -> tuple[np.ndarray, np.ndarray, float]:
    """Overscan-subtract and trim a raw frame.

    Returns
    -------
    data : ndarray (float32, ADU)
        Trimmed pixels, minus the overscan level when there is an overscan.
    saturated : ndarray (bool)
        Pixels at or above the saturation level in the raw frame, trimmed the same way.
    level : float
        The overscan level subtracted (0 without overscan).
    """
    saturated = raw >= setup.saturation_adu
    level = overscan_level(raw, setup.overscan) if setup.overscan else 0.0
    raw, saturated = trim(raw, setup), trim(saturated, setup)
    data = np.asarray(raw, dtype=np.float32) - np.float32(level)
    return data, saturated, level
