"""Cosmic-ray detection with astroscrappy (L.A.Cosmic, van Dokkum 2001)."""

from __future__ import annotations

import astroscrappy
import numpy as np


def detect_cosmic_rays(data_e: np.ndarray, mask: np.ndarray, read_noise_e: float,
                       sigclip: float = 4.5, sigfrac: float = 0.3, objlim: float = 5.0,
                       niter: int = 3) -> np.ndarray:
    """Boolean mask of cosmic-ray pixels in an image in electrons (sky included).

    Parameters
    ----------
    data_e : ndarray
        Calibrated image in electrons, sky not subtracted.
    mask : ndarray of bool
        Pixels to ignore (saturated, bad).
    read_noise_e : float
        Read noise in electrons.
    sigclip, sigfrac, objlim, niter
        L.A.Cosmic parameters (astroscrappy's meaning). ``objlim`` protects star cores.
    """
    data = np.ascontiguousarray(np.nan_to_num(data_e), dtype=np.float32)
    crmask, _ = astroscrappy.detect_cosmics(
        data, inmask=np.ascontiguousarray(mask, dtype=bool), gain=1.0,
        readnoise=float(read_noise_e), satlevel=np.inf, sigclip=sigclip, sigfrac=sigfrac,
        objlim=objlim, niter=niter, sepmed=True, cleantype="meanmask", fsmode="median",
        verbose=False)
    return np.asarray(crmask, dtype=bool)
