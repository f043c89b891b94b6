"""Calibrated catalogues on disk: the run's HDF5 file (``tgp.h5``), FITS and ECSV exports."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from tgpcore.io.atomic import atomic_path
from tgpcore.photometry.catalog import write_table


def _h5_safe(table: Table) -> Table:
    """A copy HDF5 can hold: masked values filled (NaN, or -1 for integer flags)."""
    out = Table()
    for name in table.colnames:
        col = table[name]
        if hasattr(col, "filled"):
            fill = np.nan if col.dtype.kind == "f" else (-1 if col.dtype.kind in "iu" else "")
            col = col.filled(fill)
        out[name] = col
    out.meta = {k: (json.dumps(v, default=str) if not isinstance(v, str | int | float) else v)
                for k, v in table.meta.items()}
    return out


def write_hdf5_table(h5_path: str | Path, key: str, table: Table,
                     attrs: dict[str, Any] | None = None) -> Path:
    """Put ``table`` at ``key`` of the run's HDF5 file, keeping everything else in it.

    The file is copied, changed and renamed into place, so a crash never leaves it half
    written. ``attrs`` (JSON-encoded) go on the dataset.
    """
    import h5py

    h5_path = Path(h5_path)
    h5_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(h5_path) as tmp:
        if h5_path.exists():
            shutil.copyfile(h5_path, tmp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _h5_safe(table).write(tmp, path=key, format="hdf5", overwrite=True, append=True,
                                  serialize_meta=False)
        if attrs:
            with h5py.File(tmp, "a") as h5:
                for k, v in attrs.items():
                    h5[key].attrs[k] = json.dumps(v, default=str)
    return h5_path


def read_hdf5_table(h5_path: str | Path, key: str) -> Table:
    """Read a table written by :func:`write_hdf5_table`."""
    return Table.read(h5_path, path=key, format="hdf5")


def export_catalogue(table: Table, out_dir: str | Path, name: str,
                     h5_path: str | Path | None = None, h5_key: str | None = None,
                     attrs: dict[str, Any] | None = None) -> dict[str, str]:
    """Write a calibrated catalogue as ECSV and FITS (for TOPCAT) and into the run's HDF5.

    Returns
    -------
    dict
        ``ecsv``, ``fits`` and (when written) ``hdf5`` paths, and ``hdf5_key``.
    """
    out_dir = Path(out_dir)
    paths = {"ecsv": str(write_table(table, out_dir / f"{name}.ecsv")),
             "fits": str(write_table(_fits_safe(table), out_dir / f"{name}.fits"))}
    if h5_path is not None:
        key = h5_key or f"photometry/{name}"
        write_hdf5_table(h5_path, key, table, attrs)
        paths["hdf5"], paths["hdf5_key"] = str(h5_path), key
    return paths


def _fits_safe(table: Table) -> Table:
    t = table.copy()
    t.meta = {k: (json.dumps(v, default=str)[:60] if not isinstance(v, str | int | float)
                  else v) for k, v in table.meta.items() if len(k) <= 8}
    return t
