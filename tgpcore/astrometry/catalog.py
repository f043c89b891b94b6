"""Reference catalogues for plate solving: columns, epoch propagation, cone selection.

A reference catalogue is an astropy Table with ``ra`` and ``dec`` (degrees, ICRS) and
optionally a magnitude column (brightest first is how the matcher uses it) and ``pmra`` /
``pmdec`` (mas/yr) with a ``ref_epoch`` (Julian year), as in Gaia. Local CSV/ECSV/FITS files
(Gaia cones, SDSS, the simulator's ``gaia.ecsv``) are read with :func:`read_reference`, which
also understands the column names of VizieR's Gaia tables (``RA_ICRS``, ``DE_ICRS``, ``pmRA``,
``pmDE``, ``Gmag``, ``Epoch``; I/350 positions are at 2016.0) and other common aliases.
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
    """Read a local reference catalogue (CSV, ECSV, FITS, VOTable) with ``ra``/``dec``.

    Column names are standardised as for Gaia tables
    (:func:`tgpcore.catalogs.columns.standardise_gaia_table`): VizieR's ``RA_ICRS``,
    ``DE_ICRS``, ``pmRA``, ``pmDE``, ``Gmag``, ``Epoch`` become ``ra``, ``dec``, ``pmra``,
    ``pmdec``, ``phot_g_mean_mag``, ``ref_epoch``; ``RAJ2000``/``DEJ2000`` and ``RAdeg``/
    ``DEdeg`` are accepted too. Without a ``ref_epoch`` column, proper motions are taken to
    refer to 2016.0 (Gaia DR3/EDR3).

    Raises
    ------
    ValueError
        When the file has no recognisable RA or Dec column (the message names the file and
        lists its columns).
    """
    from tgpcore.catalogs.columns import standardise_gaia_table

    path = Path(path)
    fmt = "ascii.csv" if path.suffix.lower() == ".csv" else None
    table = Table.read(path, format=fmt) if fmt else Table.read(path)
    table = standardise_gaia_table(table, source=str(path))
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
    ref = (np.ma.filled(np.asarray(table["ref_epoch"], float), 2016.0)
           if "ref_epoch" in table.colnames else np.full(len(table), 2016.0))
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


def combine_references(tables: list[Table], match_arcsec: float = 1.0) -> Table:
    """One reference from several (e.g. a Gaia member list and SDSS): the union, the first
    table's row kept where two tables have the same star.

    Each table's magnitude column (:func:`magnitude_column`) becomes ``mag`` (bands differ by
    a colour term, well inside the solver's zero-point window); proper motions and epochs are
    kept where a table has them. A ``source`` column says which table (0, 1, ...) each row
    came from.

    Parameters
    ----------
    tables : list of Table
        Reference tables with ``ra``/``dec`` (as from :func:`read_reference`), the preferred
        (most precise) first.
    match_arcsec : float
        Rows of later tables within this distance of an earlier table's star are dropped.
    """
    from astropy.coordinates import SkyCoord

    if len(tables) == 1:
        return tables[0]
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("ra", "dec", "mag", "pmra", "pmdec",
                                                         "ref_epoch", "source")}
    kept_ra: list[np.ndarray] = []
    kept_dec: list[np.ndarray] = []
    for k, t in enumerate(tables):
        ra = np.asarray(t["ra"], float)
        dec = np.asarray(t["dec"], float)
        keep = np.ones(len(t), bool)
        if kept_ra and len(t):
            prev = SkyCoord(np.concatenate(kept_ra), np.concatenate(kept_dec), unit="deg")
            _, sep, _ = SkyCoord(ra, dec, unit="deg").match_to_catalog_sky(prev)
            keep = sep.arcsec > match_arcsec
        mcol = magnitude_column(t)

        def col(name: str, default: float, table: Table = t) -> np.ndarray:
            if name in table.colnames:
                return np.ma.filled(np.asarray(table[name], float), np.nan)
            return np.full(len(table), default)

        cols["ra"].append(ra[keep])
        cols["dec"].append(dec[keep])
        cols["mag"].append((col(mcol, np.nan) if mcol else np.full(len(t), np.nan))[keep])
        cols["pmra"].append(col("pmra", np.nan)[keep])
        cols["pmdec"].append(col("pmdec", np.nan)[keep])
        cols["ref_epoch"].append(col("ref_epoch", 2016.0)[keep])
        cols["source"].append(np.full(int(keep.sum()), k))
        kept_ra.append(ra[keep])
        kept_dec.append(dec[keep])
    return Table({k: np.concatenate(v) for k, v in cols.items()})
