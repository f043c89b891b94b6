"""Read a local catalogue file (offline mode): CSV, VOTable, ECSV or FITS."""

from __future__ import annotations

from pathlib import Path

from astropy.table import Table

from tgpcore.catalogs.columns import standardise_gaia_table

#: Suffix -> astropy format.
FORMATS: dict[str, str] = {
    ".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".vot": "votable", ".xml": "votable",
    ".votable": "votable", ".fits": "fits", ".fit": "fits", ".fits.gz": "fits",
    ".fit.gz": "fits",
}


def catalog_format(path: str | Path) -> str:
    """The astropy format of a catalogue file, from its suffix.

    Raises
    ------
    ValueError
        For an unknown suffix.
    """
    name = Path(path).name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    raise ValueError(f"catalogue file {path}: unknown format (expected one of "
                     f"{', '.join(sorted(FORMATS))})")


def read_catalog_file(path: str | Path, required: tuple[str, ...] = ()) -> Table:
    """Read a Gaia-like table from a file and standardise its columns.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.ecsv``, ``.vot``/``.xml``/``.votable`` or ``.fits`` file.
    required : tuple of str
        Gaia archive column names that must be present (aliases are accepted).

    Returns
    -------
    astropy.table.Table
        Archive column names, units attached; ``meta["source_file"]`` is the path.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    tgpcore.catalogs.columns.MissingColumnError
        If a required column is absent; the message names the file and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue file not found: {path}")
    table = Table.read(path, format=catalog_format(path))
    out = standardise_gaia_table(table, source=str(path), required=required)
    out.meta["source_file"] = str(path)
    return out
