"""Cosmic rays: muon tracks and compact hits, as the charge they deposit in pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Mean charge a minimum-ionising particle leaves in silicon (e- per micron of path).
E_PER_UM = 80.0
#: Pixels receiving less charge than this are dropped (so every recorded pixel stands out).
MIN_CHARGE_E = 10.0


@dataclass(frozen=True)
class CosmicRays:
    """Charge deposited by cosmic rays: 0-based pixel indices and electrons, one per pixel."""

    y: np.ndarray
    x: np.ndarray
    charge_e: np.ndarray
    n_events: int

    def image(self, shape: tuple[int, int]) -> np.ndarray:
        """The deposited charge as a dense float image (e-)."""
        out = np.zeros(shape)
        out[self.y, self.x] = self.charge_e
        return out


def _deposit(points_x: np.ndarray, points_y: np.ndarray, charge: np.ndarray,
             shape: tuple[int, int]) -> np.ndarray:
    """Split point charges bilinearly onto pixel centres; return a flat charge array."""
    ny, nx = shape
    x0, y0 = np.floor(points_x), np.floor(points_y)
    fx, fy = points_x - x0, points_y - y0
    out = np.zeros(nx * ny)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                      (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = (x0 + dx).astype(int), (y0 + dy).astype(int)
        ok = (xi >= 0) & (xi < nx) & (yi >= 0) & (yi < ny)
        out += np.bincount(yi[ok] * nx + xi[ok], weights=(charge * w)[ok], minlength=nx * ny)
    return out


def cosmic_rays(shape: tuple[int, int], exptime_s: float, rate_per_cm2_s: float,
                pixel_size_um: float, rng: np.random.Generator,
                thickness_um: float = 20.0) -> CosmicRays:
    """Cosmic-ray charge of one exposure.

    Events arrive at ``rate_per_cm2_s`` over the imaging area for ``exptime_s``. 70 % are
    muons crossing the depleted layer (zenith angle with a cos² law, 80 e-/µm of path with a
    Landau-like log-normal spread; 15 % of them grazing, 5-40 px long), 30 % compact hits
    (log-normal charge, median 1500 e-). Charge is split bilinearly along the track.

    Parameters
    ----------
    shape : tuple of int
        (ny, nx) of the imaging area.
    exptime_s : float
        Exposure time.
    rate_per_cm2_s : float
        Event rate.
    pixel_size_um : float
        Pixel pitch.
    rng : numpy.random.Generator
        Random generator.
    thickness_um : float
        Depleted thickness.

    Returns
    -------
    CosmicRays
        Pixels with at least :data:`MIN_CHARGE_E` electrons.
    """
    ny, nx = shape
    area_cm2 = nx * ny * (pixel_size_um * 1e-4) ** 2
    n = int(rng.poisson(rate_per_cm2_s * area_cm2 * max(exptime_s, 0.0)))
    px, py, pq = [], [], []
    for _ in range(n):
        x0, y0 = rng.uniform(-0.5, nx - 0.5), rng.uniform(-0.5, ny - 0.5)
        if rng.random() < 0.7:
            if rng.random() < 0.15:
                length = rng.uniform(5.0, 40.0)
            else:
                cos_t = rng.random() ** (1.0 / 3.0)
                length = thickness_um * np.sqrt(1.0 - cos_t**2) / cos_t / pixel_size_um
            path_um = np.hypot(length * pixel_size_um, thickness_um)
            total = E_PER_UM * path_um * rng.lognormal(0.0, 0.35)
            phi = rng.uniform(0.0, 2.0 * np.pi)
            k = max(1, int(np.ceil(length / 0.25)))
            s = (np.arange(k) + 0.5) / k * length
            px.append(x0 + s * np.cos(phi))
            py.append(y0 + s * np.sin(phi))
            pq.append(np.full(k, total / k))
        else:
            total = rng.lognormal(np.log(1500.0), 0.7)
            k = 8
            px.append(x0 + rng.normal(0.0, 0.35, k))
            py.append(y0 + rng.normal(0.0, 0.35, k))
            pq.append(np.full(k, total / k))
    if n == 0:
        empty = np.zeros(0, dtype=np.int32)
        return CosmicRays(empty, empty, np.zeros(0), 0)
    flat = _deposit(np.concatenate(px), np.concatenate(py), np.concatenate(pq), shape)
    idx = np.flatnonzero(flat >= MIN_CHARGE_E)
    return CosmicRays((idx // nx).astype(np.int32), (idx % nx).astype(np.int32), flat[idx], n)
