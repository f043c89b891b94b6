"""FITS images to small PNG thumbnails (ZScale, grey) and PNG bytes to data URIs."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import PIL.Image
from astropy.io import fits
from astropy.visualization import ZScaleInterval

THUMB_MAX_PX = 360
"""Longest side of a thumbnail in pixels."""
N_GREY = 255
_PALETTE = [v for g in np.linspace(0, 255, N_GREY).round().astype(int) for v in (g, g, g)]
_PALETTE += [90, 0, 0]  # missing data


def first_image(path: str | Path) -> np.ndarray:
    """Return the first two-dimensional image of a FITS file (primary HDU first).

    Parameters
    ----------
    path : str or Path
        A FITS file.

    Returns
    -------
    numpy.ndarray
        The image as float32 (a cube's first plane if there is no 2-D image).

    Raises
    ------
    ValueError
        If the file has no image data.
    """
    with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
        for hdu in hdul:
            data = getattr(hdu, "data", None)
            if data is None or not hasattr(data, "ndim") or data.ndim < 2:
                continue
            while data.ndim > 2:
                data = data[0]
            return np.asarray(data, dtype=np.float32)
    raise ValueError(f"{path}: no image data")


def block_reduce_mean(image: np.ndarray, max_px: int = THUMB_MAX_PX) -> np.ndarray:
    """Shrink an image by an integer factor (NaN-aware block mean) to at most ``max_px``.

    Parameters
    ----------
    image : numpy.ndarray
        Two-dimensional image; NaN marks pixels without data.
    max_px : int
        Longest side of the result.

    Returns
    -------
    numpy.ndarray
        The reduced image (the input itself when it is already small enough).
    """
    factor = int(np.ceil(max(image.shape) / max_px))
    if factor <= 1:
        return image
    ny, nx = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor)
    finite = np.isfinite(blocks)
    total = np.where(finite, blocks, 0.0).sum(axis=(1, 3), dtype=np.float64)
    count = finite.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def image_to_png(image: np.ndarray) -> bytes:
    """Render an image as a grey PNG with ZScale limits (origin at the bottom).

    Parameters
    ----------
    image : numpy.ndarray
        Two-dimensional image. Pixels that are not finite are drawn dark red.

    Returns
    -------
    bytes
        PNG file content: 8-bit, 255 grey levels plus one colour for missing data (a
        palette image, a quarter the size of RGB).
    """
    finite = np.isfinite(image)
    if finite.any():
        vmin, vmax = ZScaleInterval().get_limits(image[finite])
    else:
        vmin, vmax = 0.0, 1.0
    if not vmax > vmin:
        vmax = vmin + 1.0
    scaled = np.clip((np.where(finite, image, vmin) - vmin) / (vmax - vmin), 0.0, 1.0)
    index = np.round(scaled * (N_GREY - 1)).astype(np.uint8)
    index[~finite] = N_GREY
    img = PIL.Image.fromarray(np.ascontiguousarray(index[::-1]), mode="P")
    img.putpalette(_PALETTE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def fits_thumbnail(path: str | Path, max_px: int = THUMB_MAX_PX) -> bytes:
    """A PNG thumbnail of a FITS image: first image, block-mean reduced, ZScale, grey.

    Parameters
    ----------
    path : str or Path
        A FITS file.
    max_px : int
        Longest side of the thumbnail in pixels.

    Returns
    -------
    bytes
        PNG file content.
    """
    return image_to_png(block_reduce_mean(first_image(path), max_px))


def data_uri(content: bytes, mime: str = "image/png") -> str:
    """Return ``content`` as a base64 ``data:`` URI."""
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"
