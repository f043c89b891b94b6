"""Sigma-clipped combination of a stack of frames, in row chunks to bound memory."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from astropy.stats import sigma_clip

NoiseModel = Callable[[np.ndarray], np.ndarray]


def clipped_mean(stack: np.ndarray, sigma: float = 3.0, maxiters: int = 1,
                 chunk_rows: int = 256, mask: np.ndarray | None = None,
                 noise_model: NoiseModel | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sigma-clipped mean along axis 0 about the median.

    Parameters
    ----------
    stack : ndarray, shape (n, ny, nx)
        The frames, all on one pixel grid.
    sigma, maxiters : float, int
        Clipping threshold and iterations.
    chunk_rows : int
        Rows processed at a time; the temporary arrays scale with it, not with ``ny``.
    mask : ndarray of bool, optional
        Pixels to leave out before clipping (same shape as ``stack``).
    noise_model : callable, optional
        ``noise_model(median) -> sigma``: each frame's expected noise at each pixel, given the
        median of the frames there (shape broadcastable to ``(n, rows, nx)``). With it, values
        further than ``sigma`` expected standard deviations from the median are rejected (IRAF's
        *ccdclip*): this works with as few as 3 frames, where the scatter of the frames
        themselves cannot reveal a cosmic ray. Without it, the scatter of the frames is used
        (astropy's ``sigma_clip``, as ``ccdproc.combine`` does).

    Returns
    -------
    mean : ndarray (float32, ny × nx)
        NaN where every frame was rejected.
    n_used : ndarray (int16, ny × nx)
        Frames kept per pixel.
    """
    n, ny, nx = stack.shape
    mean = np.empty((ny, nx), dtype=np.float32)
    n_used = np.empty((ny, nx), dtype=np.int16)
    for r0 in range(0, ny, chunk_rows):
        block = stack[:, r0:r0 + chunk_rows]
        bad = mask[:, r0:r0 + chunk_rows] if mask is not None else np.zeros(block.shape, bool)
        clipped = np.ma.masked_array(block, mask=bad.copy())
        if noise_model is not None and n >= 2:
            for _ in range(max(maxiters, 1)):
                centre = np.ma.median(clipped, axis=0).filled(np.nan)
                expected = np.broadcast_to(noise_model(centre), block.shape)
                with np.errstate(invalid="ignore"):
                    reject = np.abs(block - centre[None]) > sigma * expected
                new = bad | reject
                if np.array_equal(new, clipped.mask):
                    break
                clipped.mask = new
        elif n >= 3:
            clipped = sigma_clip(clipped, sigma=sigma, maxiters=maxiters, axis=0,
                                 cenfunc="median", stdfunc="std", masked=True, copy=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = clipped.mean(axis=0)
        mean[r0:r0 + chunk_rows] = np.ma.filled(m.astype(np.float32), np.nan)
        n_used[r0:r0 + chunk_rows] = clipped.count(axis=0)
    return mean, n_used
