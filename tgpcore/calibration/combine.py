"""Sigma-clipped combination of a stack of frames, in row chunks to bound memory."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

NoiseModel = Callable[[np.ndarray], np.ndarray]


def clipped_mean(stack: np.ndarray, sigma: float = 3.0, maxiters: int = 1,
                 chunk_rows: int = 32, mask: np.ndarray | None = None,
                 noise_model: NoiseModel | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sigma-clipped mean along axis 0 about the median.

    Parameters
    ----------
    stack : ndarray, shape (n, ny, nx)
        The frames, all on one pixel grid.
    sigma, maxiters : float, int
        Clipping threshold and iterations.
    chunk_rows : int
        Rows processed at a time; the temporary arrays scale with it, not with ``ny``. 32 rows
        of 15 frames 2080 px wide (4 MB) stay in the processor's cache: as fast as 128 rows
        alone, about 10 % faster when two workers build masters side by side.
    mask : ndarray of bool, optional
        Pixels to leave out before clipping (same shape as ``stack``).
    noise_model : callable, optional
        ``noise_model(median) -> sigma``: each frame's expected noise at each pixel, given the
        median of the frames there (shape broadcastable to ``(n, rows, nx)``). With it, values
        further than ``sigma`` expected standard deviations from the median are rejected (IRAF's
        *ccdclip*): this works with as few as 3 frames, where the scatter of the frames
        themselves cannot reveal a cosmic ray. Without it, the scatter of the frames about the
        median is used (what ``ccdproc.combine``'s sigma clipping does); it needs >= 3 frames.

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
    clip = noise_model is not None and n >= 2 or noise_model is None and n >= 3
    for r0 in range(0, ny, chunk_rows):
        block = stack[:, r0:r0 + chunk_rows]
        usable = (~mask[:, r0:r0 + chunk_rows] if mask is not None
                  else np.ones(block.shape, dtype=bool))
        keep = usable
        for _ in range(max(maxiters, 1) if clip else 0):
            if keep.all():
                centre = _median0(block)
                spread = None if noise_model is not None else block.std(axis=0)
            else:
                held = np.where(keep, block, np.nan)
                with np.errstate(invalid="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-rejected pixels
                    centre = np.nanmedian(held, axis=0)
                    spread = None if noise_model is not None else np.nanstd(held, axis=0)
            limit = sigma * (noise_model(centre) if noise_model is not None else spread[None])
            with np.errstate(invalid="ignore"):
                new = usable & (np.abs(block - centre[None]) <= limit)
            if np.array_equal(new, keep):
                break
            keep = new
        count = keep.sum(axis=0)
        total = np.where(keep, block, 0.0).sum(axis=0, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean[r0:r0 + chunk_rows] = np.where(count > 0, total / count, np.nan)
        n_used[r0:r0 + chunk_rows] = count
    return mean, n_used



def _median0(block: np.ndarray) -> np.ndarray:
    """Median along axis 0 (what np.median does), by sorting each pixel's few values.

    The values are first gathered so that each pixel's frames lie side by side: sorting those
    short contiguous rows is 2-3x faster than partitioning along the strided first axis.
    """
    n = block.shape[0]
    k = n // 2
    srt = np.sort(np.ascontiguousarray(np.moveaxis(block, 0, -1)), axis=-1)
    if n % 2:
        return srt[..., k]
    return 0.5 * (srt[..., k - 1] + srt[..., k])
