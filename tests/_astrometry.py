"""Helpers for the plate-solving tests."""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS


def wcs_rms_vs_truth(w: WCS, true: WCS, shape=(256, 256), n=12) -> float:
    """RMS sky distance (arcsec) between two WCS over an n x n grid of a field of ``shape``."""
    gx, gy = np.meshgrid(np.linspace(0, shape[1] - 1, n), np.linspace(0, shape[0] - 1, n))
    a = np.array(true.all_pix2world(gx.ravel(), gy.ravel(), 0))
    b = np.array(w.all_pix2world(gx.ravel(), gy.ravel(), 0))
    d = np.hypot((a[0] - b[0]) * np.cos(np.radians(a[1])), a[1] - b[1]) * 3600.0
    return float(np.sqrt(np.mean(d**2)))
