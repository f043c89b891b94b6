"""Growing a boolean mask by one pixel, with array shifts instead of a full morphology pass."""

from __future__ import annotations

import numpy as np


def grow_mask(mask: np.ndarray, connectivity: int = 8) -> np.ndarray:
    """``mask`` and the pixels next to it: 4-connected (a cross) or 8-connected (3x3).

    The same as ``scipy.ndimage.binary_dilation(mask)`` (connectivity 4) or with a 3x3
    structure (connectivity 8), about ten times faster on an image: four or eight shifted ORs.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, not {connectivity}")
    mask = np.asarray(mask, dtype=bool)
    rows = mask.copy()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    src = rows if connectivity == 8 else mask
    out = rows.copy() if connectivity == 8 else rows
    out[:, 1:] |= src[:, :-1]
    out[:, :-1] |= src[:, 1:]
    return out


def label_pixels(idx: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
    """8-connected groups of a few pixels, given by their sorted flat indices in an image.

    Returns each pixel's label (1..n) and n. Labels are numbered as ``scipy.ndimage.label``
    numbers them (in the raster order of each group's first pixel), but the work grows with the
    number of pixels, not with the image: a cosmic-ray mask holds a few thousand pixels of a
    4-million-pixel frame, and labelling the whole image cost 13 ms a time.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    idx = np.asarray(idx, dtype=np.int64)
    n = len(idx)
    if n == 0:
        return np.zeros(0, np.int32), 0
    nx = shape[1]
    col = idx % nx
    src, dst = [], []
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each pair once: the later neighbours
        target = idx + (dr * nx + dc)
        pos = np.minimum(np.searchsorted(idx, target), n - 1)
        ok = (idx[pos] == target) & (col + dc >= 0) & (col + dc < nx)
        src.append(np.flatnonzero(ok))
        dst.append(pos[ok])
    src, dst = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(n, n))
    n_groups, lab = connected_components(graph, directed=False)
    # connected_components numbers groups from their lowest node: raster order, as ndimage
    return lab.astype(np.int32) + 1, int(n_groups)
