"""Tables written atomically, and ECSV written fast.

astropy's ECSV writer formats every value in Python: a 10,700-row Gaia cone with its
membership probabilities took 1.3 s to write on a quiet machine, longer than reading it. An
ECSV file is a YAML header (comment lines) above space-separated columns with a header line,
and astropy's fast (C) writer writes the columns part the same way. :func:`write_ecsv` writes
the header with astropy's ECSV writer (from the table's zero-length slice: metadata, units,
datatypes) and the rows with astropy's fast writer; the result is the same file byte for
byte (``tests/test_io_tables.py`` keeps astropy's ECSV writer as the oracle). Tables the fast
writer cannot write as ECSV does (mixin columns such as ``SkyCoord`` or ``Time``,
multidimensional or object columns) go through the ECSV writer alone.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from astropy.table import Column, MaskedColumn, Table

from tgpcore.io.atomic import atomic_path

#: numpy kinds the fast writer writes as the ECSV writer does (bool, integers, text); floats
#: only in double precision (it writes a float32 as the double it converts it to).
_FAST_KINDS = frozenset("biuUS")


def fast_ecsv_ok(table: Table) -> bool:
    """Whether :func:`write_ecsv` may write the rows with astropy's fast writer."""
    return all(type(col) in (Column, MaskedColumn) and col.ndim == 1
               and (col.dtype.kind in _FAST_KINDS or col.dtype == "float64")
               for col in table.itercols())


def write_ecsv(table: Table, path: str | Path) -> Path:
    """Write ``table`` as ECSV at ``path`` (not atomically: see :func:`write_table`)."""
    path = Path(path)
    if not fast_ecsv_ok(table) or len(table) == 0:
        table.write(path, format="ascii.ecsv", overwrite=True)
        return path
    head = io.StringIO()
    table[:0].write(head, format="ascii.ecsv")
    lines = head.getvalue().splitlines()
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines[:-1]) + "\n")   # the YAML header; its last line: the names
        table.write(f, format="ascii.fast_basic", delimiter=" ")
    return path


def write_table(table: Table, path: str | Path, fmt: str | None = None) -> Path:
    """Write a table atomically (format from the suffix: .ecsv, .fits; or ``fmt``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or {".ecsv": "ascii.ecsv", ".fits": "fits"}.get(path.suffix, None)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "ascii.ecsv":
            write_ecsv(table, tmp)
        else:
            table.write(tmp, format=fmt, overwrite=True)
    return path
