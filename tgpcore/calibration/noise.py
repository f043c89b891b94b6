"""The noise of calibration frames, measured from the frames themselves before any rejection.

A master is combined with outlier rejection against a noise model: the read noise (from the
header) and the Poisson noise of the charge. Real headers are often wrong: the CAHA/CAFOS
night of NGC 2420 says 7.4 e- where its biases show 15 e-, and clipping two biases against
the header's figure rejected both values of 2 % of the pixels. So before combining, the
scatter of the frames is measured from the differences of consecutive members (which cancel
the fixed pattern: bias structure, dark current, flat response), in a few bands of rows spread
over the image, each difference divided by the model's prediction for it. The median of those
robust scatters over the pairs says how far the model is from the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from astropy.stats import mad_std

#: Rows per sampled band, and bands sampled (spread evenly over the image).
SAMPLE_ROWS = 16
SAMPLE_BANDS = 8
#: Width (columns) of the blocks whose median is removed from each difference: smooth changes
#: of illumination between flats are not noise. 16 x 64 pixels per block: the median's own
#: noise adds 0.08 % to the scatter.
BLOCK_COLUMNS = 64
#: The model is replaced by the measurement when they differ by more than this fraction.
TOLERANCE = 0.10


@dataclass
class NoiseCheck:
    """Measured scatter of a stack of frames against a noise model.

    Attributes
    ----------
    scale : float
        Measured / predicted scatter (median over consecutive pairs); NaN with one frame.
    per_pair : list of float
        The same for each pair (member i, member i + 1).
    n_pixels : int
        Pixels per pair the figure rests on.
    used_scale : float
        The factor applied to the model for rejection: ``scale`` when it is more than
        :data:`TOLERANCE` from 1, else 1.
    notes : list of str
        What was measured and what was used.
    """

    scale: float
    per_pair: list[float] = field(default_factory=list)
    n_pixels: int = 0
    used_scale: float = 1.0
    notes: list[str] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        """True when there were at least two frames to compare."""
        return bool(np.isfinite(self.scale))


def sample_bands(shape: tuple[int, int], rows: int = SAMPLE_ROWS, bands: int = SAMPLE_BANDS
                 ) -> list[tuple[int, int]]:
    """``(r0, r1)`` of up to ``bands`` bands of ``rows`` rows spread evenly over ``shape``."""
    ny = shape[0]
    rows = min(rows, ny)
    starts = np.unique(np.linspace(0, ny - rows, min(bands, max(1, ny // rows))).astype(int))
    return [(int(r0), int(r0) + rows) for r0 in starts]


def _highpass(z: np.ndarray, width: int = BLOCK_COLUMNS) -> np.ndarray:
    """``z`` (rows x columns) minus the median of each block of all rows x ``width`` columns."""
    out = np.array(z, dtype=np.float64)
    for c0 in range(0, out.shape[1], width):
        block = out[:, c0:c0 + width]
        block -= np.median(block)
    return out


def pair_scatter(bands: list[np.ndarray], sigmas: list[np.ndarray]) -> tuple[list[float], int]:
    """Robust scatter of consecutive members' differences over their predicted scatter.

    Parameters
    ----------
    bands : list of ndarray, each (n, rows, columns)
        The corrected members in some bands of rows.
    sigmas : list of ndarray, each broadcastable to (n, rows, columns)
        Each member's predicted noise at each pixel of the same bands.

    Returns
    -------
    per_pair : list of float
        ``mad_std`` of (v_i - v_{i+1}) / sqrt(s_i^2 + s_{i+1}^2), locally high-passed, for each
        consecutive pair.
    n_pixels : int
        Pixels per pair.
    """
    n = bands[0].shape[0]
    per_pair = []
    n_pix = 0
    for i in range(n - 1):
        zs = []
        for band, sig in zip(bands, sigmas, strict=True):
            s = np.broadcast_to(sig, band.shape)
            pred = np.sqrt(s[i].astype(np.float64) ** 2 + s[i + 1].astype(np.float64) ** 2)
            with np.errstate(invalid="ignore", divide="ignore"):
                z = (band[i].astype(np.float64) - band[i + 1]) / pred
            zs.append(_highpass(np.where(np.isfinite(z), z, 0.0)))
        allz = np.concatenate([z.ravel() for z in zs])
        n_pix = allz.size
        per_pair.append(float(mad_std(allz)))
    return per_pair, n_pix


def check_noise(read_band: Callable[[int, int], np.ndarray], shape: tuple[int, int],
                n_frames: int, model: Callable[[np.ndarray], np.ndarray],
                median: Callable[[np.ndarray], np.ndarray], what: str,
                tolerance: float = TOLERANCE) -> NoiseCheck:
    """Measure a stack's scatter against its noise model before it is combined.

    Parameters
    ----------
    read_band : callable
        ``read_band(r0, r1)`` -> the corrected members' rows r0:r1, shape (n, rows, columns).
    shape : (ny, nx)
        Image shape.
    n_frames : int
        Members in the stack.
    model : callable
        ``model(median)`` -> each member's predicted noise (broadcastable to the band).
    median : callable
        The median along the stack of a band (the centre the model is evaluated at).
    what : str
        The stack's name, for the notes.
    tolerance : float
        The model is scaled to the measurement when they differ by more than this fraction.

    Returns
    -------
    NoiseCheck
    """
    if n_frames < 2:
        return NoiseCheck(float("nan"), notes=[f"{what}: one frame, its noise cannot be "
                                                "measured; the noise model is used as it is"])
    bands, sigmas = [], []
    for r0, r1 in sample_bands(shape):
        band = np.array(read_band(r0, r1), dtype=np.float32)
        bands.append(band)
        sigmas.append(np.asarray(model(median(band)), dtype=np.float32))
    per_pair, n_pix = pair_scatter(bands, sigmas)
    scale = float(np.median(per_pair))
    check = NoiseCheck(scale, per_pair, n_pix)
    if np.isfinite(scale) and scale > 0 and abs(scale - 1.0) > tolerance:
        check.used_scale = scale
        check.notes.append(f"{what}: the frames scatter {scale:.2f} x the noise model "
                           f"(header read noise and Poisson noise), measured from "
                           f"{len(per_pair)} pair(s) of frames: rejection uses the measured "
                           "noise")
    else:
        check.notes.append(f"{what}: the frames scatter {scale:.2f} x the noise model: the "
                           "model is used")
    return check
