"""The detector's fixed maps: bias structure, dark current and hot pixels, and its geometry."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tgpcore.simulate.presets import SimPreset


@dataclass(frozen=True)
class Detector:
    """A CCD with an imaging area of ny x nx pixels and ``n_overscan`` columns to its right.

    ``bias_structure`` (ADU) is the bias of the imaging area above the overscan level;
    ``dark_current`` (e-/s) includes the hot pixels flagged in ``hot_pixels``. Read noise is
    white (``read_noise_e``) plus, optionally, electronic pickup: a sinusoid along each row
    of ``pickup_cycles_per_px`` with a random phase per row and frame and an RMS of
    ``pickup_noise_e``.
    """

    nx: int
    ny: int
    n_overscan: int
    gain_e_per_adu: float
    read_noise_e: float
    full_well_e: float
    saturation_adu: int
    bias_structure: np.ndarray
    dark_current: np.ndarray
    hot_pixels: np.ndarray
    pickup_noise_e: float = 0.0
    pickup_cycles_per_px: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        """Shape (ny, nx) of the imaging area."""
        return (self.ny, self.nx)

    @property
    def raw_shape(self) -> tuple[int, int]:
        """Shape (ny, nx + n_overscan) of a raw frame."""
        return (self.ny, self.nx + self.n_overscan)

    @property
    def trimsec(self) -> str:
        """IRAF 1-based section of the imaging area."""
        return f"[1:{self.nx},1:{self.ny}]"

    @property
    def biassec(self) -> str:
        """IRAF 1-based section of the overscan strip."""
        return f"[{self.nx + 1}:{self.nx + self.n_overscan},1:{self.ny}]"


def make_bias_structure(nx: int, ny: int, rng: np.random.Generator) -> np.ndarray:
    """Bias of the imaging area above the overscan level (ADU).

    A constant offset (~2 ADU), a column pattern (~1 ADU rms, a few warm columns), a gentle
    plane across the chip (a few ADU) and a readout transient decaying over the first rows.
    """
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    columns = rng.normal(0.0, 1.0, nx)
    warm = rng.choice(nx, size=max(1, nx // 400), replace=False)
    columns[warm] += rng.uniform(4.0, 8.0, len(warm))
    gx, gy = rng.uniform(-3.0, 3.0), rng.uniform(-2.0, 2.0)
    plane = gx * (x / nx - 0.5) + gy * (y / ny - 0.5)
    transient = rng.uniform(4.0, 8.0) * np.exp(-y / 12.0)
    return (2.0 + columns[None, :] + plane + transient).astype(np.float64)


def make_dark_current(nx: int, ny: int, mean_e_per_s: float, hot_fraction: float,
                      hot_range: tuple[float, float],
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Dark-current map (e-/s) and hot-pixel mask.

    The cool-pixel current is ``mean_e_per_s`` with a 15 % gradient along x; hot pixels
    (fraction ``hot_fraction``) have rates log-uniform in ``hot_range``.
    """
    x = np.arange(nx, dtype=float)
    dark = np.broadcast_to(mean_e_per_s * (0.925 + 0.15 * x / nx), (ny, nx)).copy()
    n_hot = int(round(hot_fraction * nx * ny))
    idx = rng.choice(nx * ny, size=n_hot, replace=False)
    lo, hi = np.log10(hot_range[0]), np.log10(hot_range[1])
    dark.ravel()[idx] = 10.0 ** rng.uniform(lo, hi, n_hot)
    hot = np.zeros((ny, nx), dtype=bool)
    hot.ravel()[idx] = True
    return dark, hot


def make_detector(p: SimPreset, rng: np.random.Generator) -> Detector:
    """The detector of preset ``p`` with its random bias structure, dark map and hot pixels."""
    dark, hot = make_dark_current(p.nx, p.ny, p.dark_current_e_per_s, p.hot_pixel_fraction,
                                  p.hot_pixel_rate_range_e_per_s, rng)
    return Detector(nx=p.nx, ny=p.ny, n_overscan=p.n_overscan, gain_e_per_adu=p.gain_e_per_adu,
                    read_noise_e=p.read_noise_e, full_well_e=p.full_well_e,
                    saturation_adu=p.saturation_adu,
                    bias_structure=make_bias_structure(p.nx, p.ny, rng),
                    dark_current=dark, hot_pixels=hot, pickup_noise_e=p.pickup_noise_e,
                    pickup_cycles_per_px=p.pickup_cycles_per_px)
