"""Synthetic star fields for photometry tests: Moffat stars rendered by the simulator's
pixel-integrated renderer, sky, Poisson and read noise, and the exact truth."""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from tgpcore.simulate.psf import render_moffat, stamp_half_sizes


def star_field(n: int = 400, size: int = 512, fwhm: float = 3.5, beta: float = 3.0,
               sky_e: float = 200.0, read_noise_e: float = 5.0, seed: int = 0,
               mag_range: tuple[float, float] = (12.0, 21.0), zp: float = 25.0,
               core: tuple[float, float, float, int] | None = None, border: int = 20,
               min_sep_px: float = 0.0):
    """Render a field; returns (data, error, truth) in electrons.

    ``core = (xc, yc, sigma_px, n_core)`` adds a Gaussian-distributed crowded core.
    Stars are spread uniformly over the field (inside ``border``), with magnitudes drawn
    from a rising luminosity function; flux = 10**(-0.4 (mag - zp)). ``min_sep_px`` keeps
    field stars apart.
    """
    rng = np.random.default_rng(seed)
    lo, hi = mag_range
    u = rng.uniform(0, 1, n)
    mags = lo + (hi - lo) * np.sqrt(u)  # more faint stars than bright
    xs, ys = [], []
    while len(xs) < n:
        x, y = rng.uniform(border, size - border, 2)
        if min_sep_px and len(xs) and np.min(np.hypot(x - np.array(xs),
                                                       y - np.array(ys))) < min_sep_px:
            continue
        xs.append(x)
        ys.append(y)
    x, y = np.array(xs), np.array(ys)
    if core is not None:
        xc, yc, s, nc = core
        cx = rng.normal(xc, s, nc)
        cy = rng.normal(yc, s, nc)
        cm = lo + 1.0 + (hi - lo - 1.0) * np.sqrt(rng.uniform(0, 1, nc))
        x, y, mags = np.r_[x, cx], np.r_[y, cy], np.r_[mags, cm]
    flux = 10 ** (-0.4 * (mags - zp))
    half = stamp_half_sizes(flux, fwhm, beta, tolerance_e=0.05, max_half=120)
    img, peak = render_moffat((size, size), x, y, flux, half, fwhm, beta)
    model = img + sky_e
    var = model + read_noise_e**2
    data = rng.poisson(model).astype(float) + rng.normal(0, read_noise_e, model.shape) - 0.0
    truth = Table({"x": x, "y": y, "flux": flux, "mag": mags, "peak": peak,
                   "in_core": np.r_[np.zeros(n, bool), np.ones(len(x) - n, bool)]})
    return data, np.sqrt(var), truth


def match(truth: Table, found: Table, radius: float = 1.5):
    """Indices (i_truth, i_found) of nearest matches within ``radius`` px (one-to-one,
    nearest found star to each truth star, brightest truth star first)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(np.column_stack([found["x"], found["y"]]))
    d, j = tree.query(np.column_stack([truth["x"], truth["y"]]))
    order = np.argsort(truth["mag"])
    used = set()
    it, jf = [], []
    for i in order:
        if d[i] <= radius and j[i] not in used:
            used.add(j[i])
            it.append(i)
            jf.append(j[i])
    return np.array(it, int), np.array(jf, int)
