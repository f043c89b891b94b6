"""The stack's combine, compiled: :func:`tgpcore.registration.stack.combine_block` in one pass
over the pixels of a row band (numba), each pixel clipped and averaged over its frames.

The numpy ``combine_block`` stays the reference: the same clipping (iterated against the
median of the used frames; the higher of two frames when doubled) and the same weighted mean,
per pixel instead of per array (tests/test_stack_combine.py).
"""

from __future__ import annotations

import math

import numpy as np

try:  # numba is optional: stack.combine_block gives the same numbers
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    njit = None
    HAVE_NUMBA = False

_KERNEL = None


def combine_block_compiled(d: np.ndarray, v: np.ndarray, bad: np.ndarray, sky: np.ndarray,
                           weights: np.ndarray | None, sigma: float, rel_tol: float,
                           max_iters: int, pair_tol: float | None = 1.0,
                           scale: np.ndarray | None = None, sky_out: float | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~tgpcore.registration.stack.combine_block`, compiled (same arguments and
    results)."""
    global _KERNEL
    n = d.shape[0]
    s = np.ones(n) if scale is None else np.asarray(scale, float)
    if sky_out is None:
        wk = np.ones(n) if weights is None else np.asarray(weights, float)
        sky_out = float(np.sum(wk * sky * s) / np.sum(wk)) if np.sum(wk) > 0 else 0.0
    if _KERNEL is None:
        _KERNEL = njit(cache=True, nogil=True)(_combine_loop)
    rows, nx = d.shape[1], d.shape[2]
    mean = np.empty((rows, nx))
    var = np.empty((rows, nx))
    used = np.empty(d.shape, np.bool_)
    clipped = np.zeros(d.shape, np.bool_)
    _KERNEL(np.ascontiguousarray(d, np.float32), np.ascontiguousarray(v, np.float32),
            np.ascontiguousarray(bad, np.bool_), np.asarray(sky, float), s,
            bool(scale is not None and np.any(s != 1.0)),
            np.zeros(n) if weights is None else np.asarray(weights, float),
            weights is not None, float(sigma), float(rel_tol), int(max_iters),
            -1.0 if pair_tol is None else float(pair_tol), float(sky_out),
            mean, var, used, clipped)
    return mean, var, used, clipped


def _combine_loop(d, v, bad, sky, s, scaled, weights, use_weights, sigma, rel_tol,
                  max_iters, pair_tol, sky_out, mean, var, used, clipped
                  ):  # pragma: no cover - compiled
    n, rows, nx = d.shape
    rel = np.empty(n)
    vv = np.empty(n)
    u = np.empty(n, np.bool_)
    buf = np.empty(n)
    for r in range(rows):
        for c in range(nx):
            for k in range(n):
                rel[k] = d[k, r, c] - sky[k]
                if scaled:
                    rel[k] = rel[k] * s[k]
                    vv[k] = v[k, r, c] * s[k] * s[k]
                else:
                    vv[k] = v[k, r, c]
                u[k] = not bad[k, r, c]
            for _ in range(max_iters):
                m = 0
                for k in range(n):
                    if u[k]:
                        buf[m] = rel[k]
                        m += 1
                if m < 3:
                    break
                for i in range(1, m):  # insertion sort: a few values, no allocation
                    x = buf[i]
                    j = i - 1
                    while j >= 0 and buf[j] > x:
                        buf[j + 1] = buf[j]
                        j -= 1
                    buf[j + 1] = x
                med = 0.5 * (buf[(m - 1) // 2] + buf[m // 2])
                changed = False
                for k in range(n):
                    if u[k] and abs(rel[k] - med) > sigma * math.sqrt(vv[k]) \
                            + rel_tol * abs(med):
                        u[k] = False
                        clipped[k, r, c] = True
                        changed = True
                if not changed:
                    break
            if pair_tol >= 0:
                m = 0
                hi_k = -1
                lo_k = -1
                for k in range(n):
                    if u[k]:
                        m += 1
                        if hi_k < 0 or rel[k] > rel[hi_k]:
                            hi_k = k
                        if lo_k < 0 or rel[k] < rel[lo_k]:
                            lo_k = k
                if m == 2:
                    sd = math.sqrt(vv[hi_k] + vv[lo_k])
                    if rel[hi_k] - rel[lo_k] > sigma * sd + pair_tol * abs(rel[lo_k]):
                        u[hi_k] = False
                        clipped[hi_k, r, c] = True
            sw = 0.0
            swr = 0.0
            sw2v = 0.0
            for k in range(n):
                used[k, r, c] = u[k]
                if not u[k]:
                    continue
                if use_weights:
                    w = weights[k]
                else:
                    w = 1.0 / vv[k] if vv[k] > 0 else 0.0
                sw += w
                swr += w * rel[k]
                sw2v += w * w * vv[k]
            if sw > 0:
                mean[r, c] = swr / sw + sky_out
                var[r, c] = sw2v / (sw * sw)
            else:
                mean[r, c] = 0.0
                var[r, c] = 0.0
