"""The Gaia columns the pipeline uses: names per release, units, and aliases of other exports.

Tables from the Gaia archive carry DR2/DR3 names (``pmra``, ``parallax_error``); exports from
VizieR or hand-made files often use other names (``pmRA``, ``e_Plx``, ``Gmag``). Everything
downstream works on the archive names, with units attached, via :func:`standardise_gaia_table`.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.table import MaskedColumn, Table

#: Columns queried from the archive (DR3 names) and their units.
GAIA_UNITS: dict[str, str | None] = {
    "source_id": None,
    "ra": "deg", "dec": "deg", "ra_error": "mas", "dec_error": "mas",
    "parallax": "mas", "parallax_error": "mas", "parallax_over_error": None,
    "pmra": "mas / yr", "pmra_error": "mas / yr", "pmdec": "mas / yr", "pmdec_error": "mas / yr",
    "ra_dec_corr": None, "pmra_pmdec_corr": None, "parallax_pmra_corr": None,
    "parallax_pmdec_corr": None,
    "ruwe": None,
    "phot_g_mean_mag": "mag", "phot_bp_mean_mag": "mag", "phot_rp_mean_mag": "mag",
    "bp_rp": "mag", "radial_velocity": "km / s", "radial_velocity_error": "km / s",
    "ref_epoch": "yr",
}

#: The default columns of a cone query, per release (DR2 has no ``ruwe`` in gaia_source: it
#: comes from the ``gaiadr2.ruwe`` table, joined by the query builder).
GAIA_QUERY_COLUMNS: dict[str, tuple[str, ...]] = {
    "dr3": tuple(c for c in GAIA_UNITS if c != "parallax_over_error"),
    "dr2": tuple(c for c in GAIA_UNITS if c != "parallax_over_error"),
}

#: Reference epoch (Julian year) of each release's positions.
GAIA_REF_EPOCH: dict[str, float] = {"dr3": 2016.0, "dr2": 2015.5}

#: Columns a membership analysis cannot do without.
MEMBERSHIP_REQUIRED: tuple[str, ...] = ("source_id", "ra", "dec", "parallax", "pmra", "pmdec")

#: Other spellings seen in exports (lower-cased key -> archive name).
ALIASES: dict[str, str] = {
    "source": "source_id", "gaiadr3": "source_id", "gaiadr2": "source_id", "dr3name": "source_id",
    "ra_icrs": "ra", "raj2000": "ra", "radeg": "ra", "de_icrs": "dec", "dej2000": "dec",
    "dedeg": "dec", "e_ra_icrs": "ra_error", "e_de_icrs": "dec_error",
    "plx": "parallax", "e_plx": "parallax_error", "rplx": "parallax_over_error",
    "pmde": "pmdec", "e_pmra": "pmra_error", "e_pmde": "pmdec_error",
    "gmag": "phot_g_mean_mag", "bpmag": "phot_bp_mean_mag", "rpmag": "phot_rp_mean_mag",
    "bp-rp": "bp_rp", "rv": "radial_velocity", "e_rv": "radial_velocity_error",
    "epoch": "ref_epoch",
}


class MissingColumnError(KeyError):
    """A catalogue lacks a column the pipeline needs; names the source and the column."""

    def __init__(self, source: str, column: str, available: list[str]) -> None:
        self.source, self.column, self.available = source, column, list(available)
        shown = ", ".join(available[:40]) + (" ..." if len(available) > 40 else "")
        super().__init__(f"catalogue {source} has no column {column!r} (nor an alias of it); "
                         f"its columns are: {shown}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def standardise_gaia_table(table: Table, source: str = "table",
                           required: tuple[str, ...] = ()) -> Table:
    """Rename a Gaia-like table's columns to archive names and attach units.

    Parameters
    ----------
    table : astropy.table.Table
        Any Gaia-like table (archive query, VizieR export, CSV file).
    source : str
        Where it came from, for error messages (a file name, a query).
    required : tuple of str
        Archive names that must be present.

    Returns
    -------
    astropy.table.Table
        A copy with archive column names (unknown columns kept as they are), units set on
        the known columns where missing, and ``bp_rp`` derived from BP and RP if absent.

    Raises
    ------
    MissingColumnError
        If a required column is absent, naming ``source`` and the column.
    """
    out = table.copy(copy_data=False)
    rename: dict[str, str] = {}
    for name in out.colnames:
        low = name.lower()
        target = low if low in GAIA_UNITS else ALIASES.get(low)
        if target is not None and target != name and target not in out.colnames \
                and target not in rename.values():
            rename[name] = target
    for old, new in rename.items():
        out.rename_column(old, new)
    if "bp_rp" not in out.colnames and {"phot_bp_mean_mag", "phot_rp_mean_mag"} <= set(out.colnames):
        out["bp_rp"] = out["phot_bp_mean_mag"] - out["phot_rp_mean_mag"]
    for name, unit in GAIA_UNITS.items():
        if name in out.colnames and unit is not None and out[name].unit is None:
            out[name].unit = u.Unit(unit)
    for name in required:
        if name not in out.colnames:
            raise MissingColumnError(source, name, table.colnames)
    return out


def column_values(table: Table, name: str, unit: str | None = None) -> np.ndarray:
    """A column as a float array (masked or missing entries NaN), converted to ``unit``.

    Parameters
    ----------
    table : astropy.table.Table
        The table.
    name : str
        Column name.
    unit : str, optional
        Convert to this unit when the column carries one.

    Returns
    -------
    numpy.ndarray
        float64 values, NaN where masked.
    """
    col = table[name]
    scale = 1.0
    if unit is not None and col.unit is not None:
        scale = float((1.0 * col.unit).to(u.Unit(unit)).value)
    if isinstance(col, MaskedColumn) or hasattr(col, "mask"):
        data = np.ma.asarray(col).astype(float).filled(np.nan)
    else:
        data = np.asarray(col, dtype=float)
    return data * scale
