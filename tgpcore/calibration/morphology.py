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
