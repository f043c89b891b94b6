"""Similarity transforms between pixel grids: fitting, decomposition, point mapping."""

from __future__ import annotations

import numpy as np


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (shift, rotation, scale) mapping ``src`` to ``dst``.

    Parameters
    ----------
    src, dst : ndarray, shape (n, 2)
        Matched points (x, y), n >= 2.

    Returns
    -------
    ndarray, shape (3, 3)
        Homogeneous matrix ``M`` with ``dst ~ M @ [x, y, 1]``.
    """
    src = np.asarray(src, float)
    dst = np.asarray(dst, float)
    n = len(src)
    a = np.zeros((2 * n, 4))
    a[0::2] = np.column_stack([src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)])
    a[1::2] = np.column_stack([src[:, 1], src[:, 0], np.zeros(n), np.ones(n)])
    (p, q, tx, ty), *_ = np.linalg.lstsq(a, dst.reshape(-1), rcond=None)
    return np.array([[p, -q, tx], [q, p, ty], [0.0, 0.0, 1.0]])


def apply(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Map points (n, 2) through a homogeneous 3x3 matrix."""
    xy = np.asarray(xy, float)
    return xy @ np.asarray(matrix)[:2, :2].T + np.asarray(matrix)[:2, 2]


def decompose(matrix: np.ndarray) -> dict[str, float]:
    """Shift (px), rotation (deg, counter-clockwise) and scale of a similarity matrix."""
    m = np.asarray(matrix, float)
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    rot = float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
    return {"shift_x_px": float(m[0, 2]), "shift_y_px": float(m[1, 2]),
            "rotation_deg": rot, "scale": scale}
