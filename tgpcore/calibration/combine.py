"""Sigma-clipped combination of a stack of frames, in row chunks to bound memory."""

from __future__ import annotations

import numpy as np
from astropy.stats import sigma_clip


def clipped_mean(stack: np.ndarray, sigma: float = 3.0, maxiters: int = 1,
                 chunk_rows: int = 256, mask: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Sigma-clipped mean along axis 0 (median centre, standard deviation).

    Parameters
    ----------
    stack : ndarray, shape (n, ny, nx)
        The frames, all on one pixel grid.
    sigma, maxiters : float, int
        Clipping threshold and iterations (astropy's ``sigma_clip``). One iteration about the
        median is what ``ccdproc.combine`` does; with the median as centre an outlier cannot
        hide itself by dragging the centre.
    chunk_rows : int
        Rows processed at a time; the temporary arrays scale with it, not with ``ny``.
    mask : ndarray of bool, optional
        Pixels to leave out before clipping (same shape as ``stack``).

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
        if mask is not None:
            block = np.ma.masked_array(block, mask=mask[:, r0:r0 + chunk_rows])
        if n >= 3:
            clipped = sigma_clip(block, sigma=sigma, maxiters=maxiters, axis=0,
                                 cenfunc="median", stdfunc="std", masked=True, copy=True)
        else:
            clipped = np.ma.masked_array(block, mask=np.ma.getmaskarray(block))
        with np.errstate(invalid="ignore", divide="ignore"):
            m = clipped.mean(axis=0)
        mean[r0:r0 + chunk_rows] = np.ma.filled(m.astype(np.float32), np.nan)
        n_used[r0:r0 + chunk_rows] = clipped.count(axis=0)
    return mean, n_used
