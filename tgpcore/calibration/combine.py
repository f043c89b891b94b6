"""Sigma-clipped combination of a stack of frames, in row chunks to bound memory."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import cache

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

    Notes
    -----
    No rule here can reject every value of a pixel:

    - two frames (with a noise model): the higher value is dropped when it exceeds the lower
      by more than ``sigma`` times their combined expected noise (a cosmic ray or a hot
      flash is positive); otherwise both are averaged. Clipping both about their mean, as
      for more frames, rejected 2 % of a real night's bias pixels outright;
    - three or more: where every value lies beyond the limit (an even number of frames whose
      two middle values disagree), the pixel takes the median of its usable values.

    Returns
    -------
    mean : ndarray (float32, ny × nx)
        NaN only where no frame had a usable value (``mask``).
    n_used : ndarray (int16, ny × nx)
        Frames kept per pixel (1 where the median was taken).
    """
    n, ny, nx = stack.shape
    mean = np.empty((ny, nx), dtype=np.float32)
    n_used = np.empty((ny, nx), dtype=np.int16)
    if n == 2 and noise_model is not None:
        for r0 in range(0, ny, chunk_rows):
            block = stack[:, r0:r0 + chunk_rows]
            usable = (~mask[:, r0:r0 + chunk_rows] if mask is not None
                      else np.ones(block.shape, dtype=bool))
            mean[r0:r0 + chunk_rows], n_used[r0:r0 + chunk_rows] = _pair_combine(
                block, usable, sigma, noise_model)
        return mean, n_used
    clip = n >= 3
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
            out = np.where(count > 0, total / count, np.nan)
        lost = (count == 0) & usable.any(axis=0)
        if lost.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out[lost] = np.nanmedian(np.where(usable, block, np.nan)[:, lost], axis=0)
            count = np.where(lost, 1, count)
        mean[r0:r0 + chunk_rows] = out
        n_used[r0:r0 + chunk_rows] = count
    return mean, n_used


def _pair_combine(block: np.ndarray, usable: np.ndarray, sigma: float,
                  noise_model: NoiseModel) -> tuple[np.ndarray, np.ndarray]:
    """Two frames: their mean, or the lower value where the higher exceeds it by more than
    ``sigma`` times their combined expected noise; a value that is not usable is left out."""
    a, b = block[0], block[1]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    s = np.broadcast_to(noise_model(0.5 * (a + b)), block.shape)
    s_lo = np.where(a <= b, s[0], s[1])
    s_hi = np.where(a <= b, s[1], s[0])
    with np.errstate(invalid="ignore"):
        drop_hi = (hi - lo) > sigma * np.sqrt(s_lo.astype(np.float64) ** 2 + s_hi ** 2)
    both = usable[0] & usable[1]
    out = np.where(drop_hi, lo, 0.5 * (a.astype(np.float64) + b))
    count = np.where(drop_hi, 1, 2)
    only_a = usable[0] & ~usable[1]
    only_b = usable[1] & ~usable[0]
    out = np.where(only_a, a, np.where(only_b, b, np.where(both, out, np.nan)))
    count = np.where(only_a | only_b, 1, np.where(both, count, 0))
    return out.astype(np.float32), count.astype(np.int16)



# Up to this many frames, the median along the stack is taken by a selection network (below);
# beyond, by sorting (the network's comparators grow as n log^2 n: at 64 frames the two cost
# the same).
_NETWORK_MAX = 48


def _median0(block: np.ndarray) -> np.ndarray:
    """Median along axis 0 (what np.median does, the same values bit for bit).

    Up to ``_NETWORK_MAX`` frames, a median-selection network (:func:`median_network`) runs on
    whole planes at once: each comparator is one ``np.minimum`` and one ``np.maximum`` over a
    contiguous plane. For 15 frames of 32 x 2080 px that is 0.8 ms where sorting each pixel's
    values took 3.5 ms (and 0.2 against 2.8 ms for 6 frames). Beyond it, each pixel's values are
    gathered side by side and sorted (short contiguous rows: 2-3x faster than partitioning
    along the strided first axis).
    """
    n = block.shape[0]
    k = n // 2
    if n <= _NETWORK_MAX:
        w = [np.array(plane) for plane in block]       # the block itself is left alone
        tmp = np.empty_like(w[0]) if n > 1 else None
        for i, j, low, high in median_network(n):
            if low and high:
                np.minimum(w[i], w[j], out=tmp)
                np.maximum(w[i], w[j], out=w[j])
                w[i], tmp = tmp, w[i]
            elif low:
                np.minimum(w[i], w[j], out=w[i])
            else:
                np.maximum(w[i], w[j], out=w[j])
        mid = w
    else:
        mid = np.moveaxis(np.sort(np.ascontiguousarray(np.moveaxis(block, 0, -1)), axis=-1),
                          -1, 0)
    if n % 2:
        return mid[k]
    return 0.5 * (mid[k - 1] + mid[k])


def _batcher(p: int) -> list[tuple[int, int]]:
    """Comparators (i, j), i < j, of Batcher's odd-even merge sort of ``p`` (a power of 2)
    values, in order."""
    pairs = []
    pp = 1
    while pp < p:
        k = pp
        while k >= 1:
            for j in range(k % pp, p - k, 2 * k):
                for i in range(min(k, p - j - k)):
                    if (i + j) // (pp * 2) == (i + j + k) // (pp * 2):
                        pairs.append((i + j, i + j + k))
            k //= 2
        pp *= 2
    return pairs


@cache
def median_network(n: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """A comparator network that leaves the median of ``n`` values in position n // 2 (odd n)
    or n // 2 - 1 and n // 2 (even n): comparators (i, j, low, high) put the smaller of
    positions i and j in i (if ``low``) and the larger in j (if ``high``).

    Batcher's odd-even merge sort of the next power of 2 (the comparators reaching beyond n
    never exchange: those values count as +inf), pruned to the comparators the middle
    positions depend on, and to the outputs of each that a later kept comparator reads.
    """
    p = 1
    while p < n:
        p *= 2
    need = {n // 2} if n % 2 else {n // 2 - 1, n // 2}
    kept = []
    for i, j in reversed([(i, j) for i, j in _batcher(p) if j < n]):
        low, high = i in need, j in need
        if low or high:
            kept.append((i, j, low, high))
            need |= {i, j}
    return tuple(reversed(kept))
