"""Exact medians of large images, faster than a full selection.

``np.median`` of a 2048^2 float32 image partitions all 4.2 million values (about 30 ms). The
median is fixed by a narrow band of them: a sorted sample of every ``n // 20000``-th value
brackets it, and only the values inside the bracket (a fraction of a percent of them) are
partitioned, after two counting passes. The result is ``np.median``'s, bit for bit; where the
bracket misses (a sample that is not representative) or the values are not all finite, the
full ``np.median`` is taken instead.
"""

from __future__ import annotations

import numpy as np

_SAMPLE = 20_000     # sampled values that bracket the median
_SMALL = 200_000     # below this many values, np.median itself
_CHUNK = 65_536


def median(values: np.ndarray) -> np.floating:
    """``np.median(values)`` (all values, flattened), in 3-5 ms for a 2048^2 image."""
    x = np.asarray(values).ravel()
    n = x.size
    if n < _SMALL or x.dtype.kind != "f":
        return np.median(x)
    lo_rank, hi_rank = (n - 1) // 2, n // 2          # the middle value(s), 0-based
    sample = np.sort(x[::n // _SAMPLE])
    if not np.isfinite(sample[0]) or not np.isfinite(sample[-1]):
        return np.median(x)
    q = len(sample)
    at = lo_rank * q // n
    half = int(3 * np.sqrt(q)) + 2                   # ~6 sigma of the sample's rank scatter
    lo, hi = sample[max(at - half, 0)], sample[min(at + half, q - 1)]
    below = above = 0
    parts = []
    for i in range(0, n, _CHUNK):              # each chunk's passes in the processor's cache
        c = x[i:i + _CHUNK]
        low, high = c < lo, c > hi
        below += int(np.count_nonzero(low))
        above += int(np.count_nonzero(high))
        low |= high
        parts.append(c[~low])
    inside = np.concatenate(parts)
    if np.isnan(inside).any() or not below <= lo_rank < hi_rank + 1 <= n - above:
        return np.median(x)                          # NaN among the values, or a miss
    k0, k1 = lo_rank - below, hi_rank - below
    part = np.partition(inside, [k0, k1])
    if k0 == k1:
        return part[k0]
    return np.mean(part[[k0, k1]])                   # as np.median averages the two


def mad_std(values: np.ndarray) -> float:
    """``astropy.stats.mad_std(values)`` (all values): 1.4826 x the median absolute deviation
    from the median, with :func:`median`."""
    x = np.asarray(values).ravel()
    return median(np.abs(x - median(x))) * 1.482602218505602
