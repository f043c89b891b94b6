"""Cosmic-ray detection with astroscrappy (L.A.Cosmic, van Dokkum 2001)."""

from __future__ import annotations

import astroscrappy
import numpy as np


def detect_cosmic_rays(data_e: np.ndarray, mask: np.ndarray, read_noise_e: float,
                       sigclip: float = 4.5, sigfrac: float = 0.3, objlim: float = 5.0,
                       niter: int = 2, pad: int = 8) -> np.ndarray:
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
    pad : int
        The image is padded by reflection before detection: L.A.Cosmic's median filters
        otherwise miss most hits within a few pixels of the edges.
    """
    data = np.pad(np.nan_to_num(data_e).astype(np.float32), pad, mode="reflect")
    inmask = np.pad(np.asarray(mask, dtype=bool), pad, mode="reflect")
    crmask, _ = astroscrappy.detect_cosmics(
        np.ascontiguousarray(data), inmask=np.ascontiguousarray(inmask), gain=1.0,
        readnoise=float(read_noise_e), satlevel=np.inf, sigclip=sigclip, sigfrac=sigfrac,
        objlim=objlim, niter=niter, sepmed=True, cleantype="meanmask", fsmode="median",
        verbose=False)
    return np.asarray(crmask, dtype=bool)[pad:-pad, pad:-pad] if pad else crmask.astype(bool)
