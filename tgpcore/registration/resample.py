"""Resampling a frame onto the reference grid, with its variance and mask carried along.

Bilinear interpolation: the data and variance are interpolated with the same weights, and the
variance is multiplied by the sum of the squared weights, so it stays the variance of the
resampled pixel (to the extent that the variance is smooth on the pixel scale).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

try:  # numba is optional: the scipy path gives the same numbers
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    njit = None
    HAVE_NUMBA = False


def is_identity(matrix: np.ndarray, tol: float = 1e-9) -> bool:
    """True when a transform matrix is the identity."""
    return bool(np.allclose(np.asarray(matrix, float), np.eye(3), atol=tol, rtol=0))


def sum_variance_factor(matrix: np.ndarray, out_shape: tuple[int, int], step: int = 16) -> float:
    """How much a bilinear resampling understates the variance of sums over areas.

    :func:`warp` gives each output pixel its own variance, ``sum(w_j^2 v_j)`` over the four
    input pixels that feed it. Neighbouring output pixels share input pixels, so the noise
    is correlated: a sum over an aperture (much larger than a pixel) has the variance of the
    input pixels it covers, ``sum(w_j v_j)`` per output pixel, which is larger by
    ``1 / mean(w_x^2 + (1-w_x)^2)(w_y^2 + (1-w_y)^2)``: 1 for whole-pixel shifts, up to 4 at
    half a pixel in x and y. Sampled on a grid of output pixels every ``step`` pixels.
    """
    if is_identity(matrix):
        return 1.0
    inv = np.linalg.inv(np.asarray(matrix, float))
    ny, nx = out_shape
    gy, gx = np.mgrid[0:ny:step, 0:nx:step].astype(float)
    sx = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]
    sy = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
    fx, fy = sx - np.floor(sx), sy - np.floor(sy)
    w2 = (fx**2 + (1 - fx) ** 2) * (fy**2 + (1 - fy) ** 2)
    return float(1.0 / np.mean(w2))


def warp(data: np.ndarray, variance: np.ndarray, mask: np.ndarray, matrix: np.ndarray,
         out_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample a frame onto the reference grid.

    Parameters
    ----------
    data, variance : ndarray
        The frame and the variance of each pixel.
    mask : ndarray of bool
        True = bad pixel.
    matrix : ndarray (3, 3)
        Frame pixel -> reference pixel (0-based x, y).
    out_shape : (ny, nx)
        Shape of the reference grid.

    Returns
    -------
    data, variance, mask
        On the reference grid (float32, float32, bool). A reference pixel is masked when any
        frame pixel that contributes to it is masked, or when it falls outside the frame.
        The variance is each pixel's own; sums over areas need :func:`sum_variance_factor`.
    """
    if is_identity(matrix) and data.shape == tuple(out_shape):
        return (data.astype(np.float32), variance.astype(np.float32),
                np.asarray(mask, bool) | ~np.isfinite(data))
    if HAVE_NUMBA:
        return warp_compiled(data, variance, mask, matrix, out_shape)
    return warp_scipy(data, variance, mask, matrix, out_shape)


def warp_scipy(data: np.ndarray, variance: np.ndarray, mask: np.ndarray, matrix: np.ndarray,
               out_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`warp` with ``scipy.ndimage.map_coordinates`` (the reference implementation)."""
    inv = np.linalg.inv(np.asarray(matrix, float))
    ny, nx = out_shape
    out_d = np.empty(out_shape, np.float32)
    out_v = np.empty(out_shape, np.float32)
    out_m = np.empty(out_shape, bool)
    bad = np.asarray(mask, bool) | ~np.isfinite(data) | ~np.isfinite(variance)
    d = np.where(bad, 0.0, data).astype(np.float32)
    v = np.where(bad, 0.0, variance).astype(np.float32)
    b = bad.astype(np.float32)
    step = max(1, 4_000_000 // max(nx, 1))  # rows per block: bounded temporaries
    xr = np.arange(nx, dtype=np.float64)
    for r0 in range(0, ny, step):
        yr = np.arange(r0, min(ny, r0 + step), dtype=np.float64)
        gx, gy = np.meshgrid(xr, yr)
        sx = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]
        sy = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
        coords = np.array([sy, sx])
        rows = slice(r0, r0 + len(yr))
        out_d[rows] = map_coordinates(d, coords, order=1, mode="constant", cval=0.0)
        fx, fy = sx - np.floor(sx), sy - np.floor(sy)
        w2 = (fx**2 + (1 - fx) ** 2) * (fy**2 + (1 - fy) ** 2)
        out_v[rows] = map_coordinates(v, coords, order=1, mode="constant", cval=0.0) * w2
        outside = (sx < 0) | (sy < 0) | (sx > data.shape[1] - 1) | (sy > data.shape[0] - 1)
        out_m[rows] = (map_coordinates(b, coords, order=1, mode="constant", cval=1.0) > 0) | outside
    return out_d, out_v, out_m


def warp_compiled(data: np.ndarray, variance: np.ndarray, mask: np.ndarray,
                  matrix: np.ndarray, out_shape: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`warp` in one compiled pass over the output pixels (numba): the four
    neighbours' indices and weights computed once for the data, variance and mask."""
    inv = np.linalg.inv(np.asarray(matrix, float))
    bad = np.asarray(mask, bool) | ~np.isfinite(data) | ~np.isfinite(variance)
    d = np.where(bad, 0.0, data).astype(np.float32)
    v = np.where(bad, 0.0, variance).astype(np.float32)
    ny, nx = out_shape
    out_d = np.empty((ny, nx), np.float32)
    out_v = np.empty((ny, nx), np.float32)
    out_m = np.empty((ny, nx), np.bool_)
    _warp_kernel()(d, v, bad, inv, out_d, out_v, out_m)
    return out_d, out_v, out_m


_KERNEL = None


def _warp_kernel():
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = njit(cache=True, nogil=True)(_warp_loop)
    return _KERNEL


def _warp_loop(d, v, bad, inv, out_d, out_v, out_m):  # pragma: no cover - compiled
    ny_in, nx_in = d.shape
    ny, nx = out_d.shape
    for r in range(ny):
        for c in range(nx):
            sx = inv[0, 0] * c + inv[0, 1] * r + inv[0, 2]
            sy = inv[1, 0] * c + inv[1, 1] * r + inv[1, 2]
            if sx < 0 or sy < 0 or sx > nx_in - 1 or sy > ny_in - 1:
                out_d[r, c] = 0.0
                out_v[r, c] = 0.0
                out_m[r, c] = True
                continue
            x0 = int(np.floor(sx))
            y0 = int(np.floor(sy))
            fx = sx - x0
            fy = sy - y0
            x1 = x0 + 1 if x0 + 1 < nx_in else x0
            y1 = y0 + 1 if y0 + 1 < ny_in else y0
            w00 = (1.0 - fx) * (1.0 - fy)
            w01 = fx * (1.0 - fy)
            w10 = (1.0 - fx) * fy
            w11 = fx * fy
            out_d[r, c] = (w00 * d[y0, x0] + w01 * d[y0, x1] + w10 * d[y1, x0]
                           + w11 * d[y1, x1])
            w2 = (fx * fx + (1.0 - fx) ** 2) * (fy * fy + (1.0 - fy) ** 2)
            out_v[r, c] = (w00 * v[y0, x0] + w01 * v[y0, x1] + w10 * v[y1, x0]
                           + w11 * v[y1, x1]) * w2
            out_m[r, c] = ((w00 > 0 and bad[y0, x0]) or (w01 > 0 and bad[y0, x1])
                           or (w10 > 0 and bad[y1, x0]) or (w11 > 0 and bad[y1, x1]))
