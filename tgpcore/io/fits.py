"""FITS reading and writing for tgp's images.

Calibrated images are :class:`astropy.nddata.CCDData` saved with extensions for the uncertainty
(``UNCERT``, standard deviation, same unit as the data), the boolean mask (``MASK``) and the bit
flags that say why a pixel is masked (``FLAGS``). Every write goes through a temporary file and
an atomic rename.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from tgpcore.io.atomic import atomic_path

# Bit flags of the FLAGS extension.
FLAG_SATURATED = 1
FLAG_BADPIX = 2
FLAG_COSMIC = 4
FLAG_NONFINITE = 8
FLAG_NOCOVERAGE = 16
FLAG_NAMES = {FLAG_SATURATED: "saturated", FLAG_BADPIX: "bad pixel", FLAG_COSMIC: "cosmic ray",
              FLAG_NONFINITE: "not finite", FLAG_NOCOVERAGE: "no coverage"}


def read_raw(path: str | Path, hdu_index: int = 0) -> tuple[np.ndarray, fits.Header]:
    """Read a raw frame's pixels (float32, BSCALE and BZERO applied, BLANK as NaN) and its
    header (with the raw data's BITPIX, BSCALE and BZERO).

    The stored integers are read as they are and scaled in one pass (:func:`scale_raw`):
    astropy's own scaling first makes an unsigned-integer copy, 4x slower for a 2048^2 frame.

    Raises
    ------
    ValueError
        If the HDU holds no 2-D image; the message names the file.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path, memmap=False, do_not_scale_image_data=True) as hdul:
            hdu = hdul[hdu_index]
            data = hdu.data
            header = hdu.header.copy()
    if data is None:
        raise ValueError(f"{path}: HDU {hdu_index} has no data")
    data = np.squeeze(data)
    if data.ndim != 2:
        raise ValueError(f"{path}: HDU {hdu_index} is not a 2-D image (shape {data.shape})")
    return scale_raw(data, header), header


def scale_raw(raw: np.ndarray, header: fits.Header) -> np.ndarray:
    """Stored FITS pixels ``raw`` (any part of an image) as physical values, float32: BSCALE
    and BZERO from ``header`` applied, and the integer BLANK value as NaN.

    16-bit integers plus an integer zero (unsigned 16-bit data: BZERO 32768) are exact in
    float32 and are converted directly; anything else is scaled in double precision, as
    astropy scales.
    """
    bscale, bzero = float(header.get("BSCALE", 1.0)), float(header.get("BZERO", 0.0))
    blank = header.get("BLANK") if raw.dtype.kind in "iu" else None
    if bscale == 1.0 and bzero == float(int(bzero)) and raw.dtype.itemsize <= 2:
        out = raw.astype(np.float32)
        if bzero:
            out += np.float32(bzero)
    else:
        out = (raw.astype(np.float64) * bscale + bzero).astype(np.float32)
    if blank is not None:
        out[raw == blank] = np.nan
    return out


def provenance(header: fits.Header, step: str, text: str) -> None:
    """Leave a provenance line in a header, in the way ccdproc's ``log_to_metadata`` does."""
    header.add_history(f"tgp {step}: {text}"[:1000])


def write_ccd(ccd: CCDData, path: str | Path, flags: np.ndarray | None = None) -> Path:
    """Write a CCDData with UNCERT, MASK and (optionally) FLAGS extensions, atomically.

    Data and uncertainty are stored as float32.
    """
    path = Path(path)
    header = fits.Header(ccd.header) if ccd.header is not None else fits.Header()
    header["BUNIT"] = ccd.unit.to_string()
    for key in ("BLANK", "BZERO", "BSCALE"):  # integer-data scaling of the raw frame
        header.remove(key, ignore_missing=True, remove_all=True)
    hdus = [fits.PrimaryHDU(_float32(ccd.data), header=header)]
    if ccd.uncertainty is not None:
        h = fits.Header({"UTYPE": "StdDevUncertainty", "BUNIT": ccd.unit.to_string()})
        hdus.append(fits.ImageHDU(_float32(ccd.uncertainty.array), header=h,
                                  name="UNCERT"))
    if ccd.mask is not None:
        hdus.append(fits.ImageHDU(np.asarray(ccd.mask, dtype=np.uint8), name="MASK"))
    if flags is not None:
        h = fits.Header()
        for bit, name in FLAG_NAMES.items():
            h[f"FLAG{bit}"] = (name, "meaning of this bit")
        hdus.append(fits.ImageHDU(np.asarray(flags, dtype=np.uint8), header=h, name="FLAGS"))
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp)
    return path


def _float32(a: np.ndarray) -> np.ndarray:
    """``a`` as float32 of either byte order (big-endian, FITS's own, is written as it is;
    astropy byte-swaps a little-endian array in place before writing it and back after)."""
    a = np.asarray(a)
    return a if a.dtype.kind == "f" and a.dtype.itemsize == 4 else a.astype(np.float32)


def read_ccd(path: str | Path) -> CCDData:
    """Read an image written by :func:`write_ccd` (unit from BUNIT)."""
    with fits.open(path, memmap=False) as hdul:
        header = hdul[0].header.copy()
        data = hdul[0].data.astype(np.float32)
        unit = u.Unit(header.get("BUNIT", "adu"))
        unc = hdul["UNCERT"].data.astype(np.float32) if "UNCERT" in hdul else None
        mask = hdul["MASK"].data.astype(bool) if "MASK" in hdul else None
    return CCDData(data, unit=unit, header=header, mask=mask,
                   uncertainty=StdDevUncertainty(unc) if unc is not None else None)


def read_flags(path: str | Path) -> np.ndarray | None:
    """The FLAGS extension of an image written by :func:`write_ccd`, or None."""
    with fits.open(path, memmap=False) as hdul:
        return hdul["FLAGS"].data.astype(np.uint8) if "FLAGS" in hdul else None
