"""Small FITS frames for unit tests of the inventory and the plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits


def write_frame(path: Path, shape=(16, 20), **cards) -> Path:
    """Write a small uint16-like frame with the given header cards (None values skipped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.full(shape, 1000, dtype=np.int32).astype(np.uint16)
    hdu = fits.PrimaryHDU(data)
    for key, value in cards.items():
        if value is not None:
            hdu.header[key.replace("_", "-") if key == "DATE_OBS" else key] = value
    hdu.writeto(path, overwrite=True)
    return path


def small_night(root: Path, *, darks=True, flats=("B", "V"), science=("B", "V"),
                shape=(16, 20)) -> Path:
    """A tiny but complete night in the generic convention."""
    date = "2026-03-01T{:02d}:00:00"
    n = 0

    def nxt():
        nonlocal n
        n += 1
        return root / f"img_{n:04d}.fits"

    for _ in range(3):
        write_frame(nxt(), shape, IMAGETYP="Bias Frame", EXPTIME=0.0, DATE_OBS=date.format(18))
    if darks:
        for exp in (60.0, 300.0):
            for _ in range(3):
                write_frame(nxt(), shape, IMAGETYP="Dark Frame", EXPTIME=exp,
                            DATE_OBS=date.format(18))
    for f in flats:
        for _ in range(5):
            write_frame(nxt(), shape, IMAGETYP="Flat Field", FILTER=f, EXPTIME=5.0,
                        DATE_OBS=date.format(19))
    for f in science:
        for k, (ra, dec) in enumerate([(120.0, 25.0), (120.0, 25.0005), (120.05, 25.0)]):
            write_frame(nxt(), shape, IMAGETYP="Light Frame", FILTER=f, EXPTIME=60.0,
                        OBJECT=f"NGC 1234 {f}", RA=ra, DEC=dec, DATE_OBS=date.format(20 + k))
    write_frame(nxt(), shape, IMAGETYP="LIGHT", FILTER="V", EXPTIME=30.0, OBJECT="SA 98",
                RA=100.0, DEC=-0.5, AIRMASS=1.3, DATE_OBS=date.format(23))
    return root
