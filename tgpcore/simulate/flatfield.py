"""The true flat field: vignetting x dust donuts x pixel response (with defects)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tgpcore.simulate.presets import SimPreset

#: Donut size and depth factors per filter (dust sits at different distances per filter).
DONUT_SIZE: dict[str, float] = {"U": 0.9, "B": 1.0, "V": 1.1, "R": 1.15, "I": 1.2}
DONUT_DEPTH: dict[str, float] = {"U": 1.2, "B": 1.0, "V": 0.85, "R": 0.8, "I": 0.75}
#: Codes of the dead-pixel mask.
DEAD, LOW_RESPONSE = 1, 2


@dataclass(frozen=True)
class Donut:
    """A dust shadow: centre (0-based pixels), outer radius (px) and depth (fraction)."""

    x: float
    y: float
    radius_px: float
    depth: float


def pixel_response(nx: int, ny: int, prnu: float, n_dead_columns: int, n_low_columns: int,
                   dead_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pixel response (PRNU, same in all filters) with defects, and the defect mask.

    Dead columns respond at 2 %, low-response column segments at 60-85 %, dead pixels at
    0-30 %. The mask is uint8: 0 good, 1 dead (response < 0.5), 2 low response.
    """
    resp = 1.0 + prnu * rng.standard_normal((ny, nx))
    mask = np.zeros((ny, nx), dtype=np.uint8)
    cols = rng.choice(np.arange(4, nx - 4), size=n_dead_columns + n_low_columns, replace=False)
    for c in cols[:n_dead_columns]:
        resp[:, c] *= 0.02
        mask[:, c] = DEAD
    for c in cols[n_dead_columns:]:
        y0 = int(rng.integers(0, ny // 2))
        resp[y0:, c] *= rng.uniform(0.60, 0.85)
        mask[y0:, c] = LOW_RESPONSE
    n_dead = int(round(dead_fraction * nx * ny))
    idx = rng.choice(nx * ny, size=n_dead, replace=False)
    resp.ravel()[idx] *= rng.uniform(0.0, 0.3, n_dead)
    mask.ravel()[idx] = DEAD
    return resp, mask


def vignetting(nx: int, ny: int, corner_falloff: float, centre: tuple[float, float]) -> np.ndarray:
    """Radial fall-off 1 - f (r / r_corner)², equal to ``1 - corner_falloff`` at the far corner."""
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    cx, cy = centre
    r2 = (x - cx) ** 2 + (y - cy) ** 2
    corners = [(0, 0), (0, ny - 1), (nx - 1, 0), (nx - 1, ny - 1)]
    r2max = max((a - cx) ** 2 + (b - cy) ** 2 for a, b in corners)
    return 1.0 - corner_falloff * r2 / r2max


def donut_shadow(nx: int, ny: int, donuts: list[Donut], size: float, depth: float) -> np.ndarray:
    """Product of the donuts' transmissions; each is a soft-edged ring (inner radius 55 %)
    with a shallower centre, radius scaled by ``size`` and depth by ``depth``."""
    out = np.ones((ny, nx))
    for d in donuts:
        r_out = d.radius_px * size
        half = int(np.ceil(r_out + 6))
        x0, x1 = max(0, int(d.x) - half), min(nx, int(d.x) + half + 1)
        y0, y1 = max(0, int(d.y) - half), min(ny, int(d.y) + half + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(float)
        r = np.hypot(xx - d.x, yy - d.y)
        edge = 1.2
        ring = (1.0 / (1.0 + np.exp((r - r_out) / edge))) * (
            0.35 + 0.65 / (1.0 + np.exp((0.55 * r_out - r) / edge)))
        out[y0:y1, x0:x1] *= 1.0 - min(d.depth * depth, 0.06) * ring
    return out


def make_flats(p: SimPreset, rng: np.random.Generator
               ) -> tuple[dict[str, np.ndarray], np.ndarray, list[Donut], dict[str, dict]]:
    """True normalised flats per filter (median 1 over the imaging area).

    Returns
    -------
    flats : dict
        Filter -> flat (ny, nx) float64.
    dead_mask : ndarray
        uint8 defect mask (see :func:`pixel_response`).
    donuts : list of Donut
        The dust shadows (radius and depth before the per-filter factors).
    info : dict
        Per filter: vignetting centre and corner fall-off, donut size/depth factors.
    """
    resp, mask = pixel_response(p.nx, p.ny, p.prnu, p.n_dead_columns, p.n_low_columns,
                                p.dead_pixel_fraction, rng)
    centre = (p.nx / 2 + rng.uniform(-0.05, 0.05) * p.nx, p.ny / 2 + rng.uniform(-0.05, 0.05) * p.ny)
    donuts = [Donut(float(rng.uniform(0.05, 0.95) * p.nx), float(rng.uniform(0.05, 0.95) * p.ny),
                    float(rng.uniform(10.0, 35.0)), float(rng.uniform(0.02, 0.05)))
              for _ in range(p.n_dust_donuts)]
    flats, info = {}, {}
    for f in p.filters:
        vig = vignetting(p.nx, p.ny, p.vignetting_corner[f], centre)
        flat = vig * donut_shadow(p.nx, p.ny, donuts, DONUT_SIZE[f], DONUT_DEPTH[f]) * resp
        flats[f] = flat / np.median(flat)
        info[f] = {"vignetting_centre_px": list(centre),
                   "vignetting_corner_falloff": p.vignetting_corner[f],
                   "donut_size_factor": DONUT_SIZE[f], "donut_depth_factor": DONUT_DEPTH[f]}
    return flats, mask, donuts, info
