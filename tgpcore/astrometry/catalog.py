"""Reference catalogues for plate solving: columns, epoch propagation, cone selection.

A reference catalogue is an astropy Table with ``ra`` and ``dec`` (degrees, ICRS) and
optionally a magnitude column (brightest first is how the matcher uses it) and ``pmra`` /
``pmdec`` (mas/yr) with a ``ref_epoch`` (Julian year), as in Gaia. Local CSV/ECSV/FITS files
(Gaia cones, SDSS, the simulator's ``gaia.ecsv``) are read with :func:`read_reference`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

MAG_COLUMNS: tuple[str, ...] = ("phot_g_mean_mag", "gmag", "g", "r", "mag", "vmag", "v",
                                "mag_vt", "rmag", "phot_rp_mean_mag")


def magnitude_column(table: Table) -> str | None:
    """The first known magnitude column of a catalogue (case-insensitive), or None."""
    lower = {c.lower(): c for c in table.colnames}
    for name in MAG_COLUMNS:
        if name in lower:
            return lower[name]
    return None


def read_reference(path: str | Path) -> Table:
    """Read a local reference catalogue (CSV, ECSV, FITS, VOTable) with ``ra``/``dec``."""
    path = Path(path)
    fmt = "ascii.csv" if path.suffix.lower() == ".csv" else None
    table = Table.read(path, format=fmt) if fmt else Table.read(path)
    lower = {c.lower(): c for c in table.colnames}
    for want in ("ra", "dec"):
        if want not in table.colnames:
            if want not in lower:
                raise ValueError(f"{path}: no {want!r} column (columns: {table.colnames})")
            table.rename_column(lower[want], want)
    return table


def at_epoch(table: Table, epoch_jyear: float | None) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec (deg) at ``epoch_jyear`` from proper motions when the table has them.

    A linear propagation on the tangent plane (good to a few mas over decades outside the
    poles); rows without proper motion keep their catalogue position.
    """
    ra = np.asarray(table["ra"], float)
    dec = np.asarray(table["dec"], float)
    if epoch_jyear is None or "pmra" not in table.colnames or "pmdec" not in table.colnames:
        return ra, dec
    ref = (np.asarray(table["ref_epoch"], float) if "ref_epoch" in table.colnames
           else np.full(len(table), 2016.0))
    dt = epoch_jyear - ref
    pmra = np.nan_to_num(np.ma.filled(np.asarray(table["pmra"], float), np.nan))
    pmdec = np.nan_to_num(np.ma.filled(np.asarray(table["pmdec"], float), np.nan))
    dec2 = dec + pmdec * dt / 3.6e6
    ra2 = ra + pmra * dt / 3.6e6 / np.cos(np.radians(dec))
    return np.mod(ra2, 360.0), dec2


def brightest_first(table: Table) -> Table:
    """The catalogue sorted by magnitude (unknown magnitudes last)."""
    col = magnitude_column(table)
    if col is None:
        return table
    mag = np.ma.filled(np.asarray(table[col], float), np.inf)
    return table[np.argsort(np.where(np.isfinite(mag), mag, np.inf), kind="stable")]
