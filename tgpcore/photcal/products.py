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
from tgpcore.io.tables import write_table


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


def finalise_catalogue(cal: Table, bands: list[str]) -> Table:
    """The calibrated catalogue as users get it: rows with a magnitude in at least one band
    (detections whose flux came out negative or nil in every band are noise peaks and are
    dropped; ``meta['n_dropped_no_magnitude']`` counts them), sorted by right ascension,
    with a stable integer ``id`` first (1, 2, ... in that order: the same night and settings
    give the same ids)."""
    have = np.zeros(len(cal), bool)
    for b in bands:
        if b in cal.colnames:
            have |= np.isfinite(np.ma.filled(np.ma.asarray(cal[b], float), np.nan))
    out = cal[have]
    order = np.lexsort((np.asarray(out["dec"], float), np.asarray(out["ra"], float)))
    out = out[order]
    if "id" in out.colnames:
        out.rename_column("id", "id_instrumental")
    out.add_column(np.arange(1, len(out) + 1, dtype=np.int64), name="id", index=0)
    out["id"].description = "star number in this catalogue (by right ascension)"
    out.meta["n_dropped_no_magnitude"] = int((~have).sum())
    return out


def calibrate_file(inst_path: str, solutions: dict[str, dict[str, Any]], out_dir: str,
                   name: str, h5_path: str | None = None) -> dict[str, Any]:
    """Calibrate an instrumental multi-band catalogue file and export it.

    Parameters
    ----------
    inst_path : str
        ECSV from :func:`tgpcore.photometry.catalog.build_cluster_catalogue`.
    solutions : dict
        Filter -> :meth:`CalibrationSolution.to_dict` output.
    out_dir : str
        Where ``<name>.ecsv`` and ``<name>.fits`` go.
    name : str
        Catalogue name (e.g. ``SIM-NGC1_ubv``).
    h5_path : str, optional
        The run's HDF5 file; the table goes to ``photometry/<name>``.

    Returns
    -------
    dict
        Paths (``ecsv``, ``fits``, ``hdf5``, ``hdf5_key``), ``n_stars``, ``bands`` and per band
        the number of calibrated stars.
    """
    from tgpcore.io.checksum import sha256_file
    from tgpcore.photcal.apply import calibrate_catalogue
    from tgpcore.photcal.fit import CalibrationSolution

    inst = Table.read(inst_path, format="ascii.ecsv")
    sols = {f: CalibrationSolution.from_dict(d) for f, d in solutions.items()}
    cal = finalise_catalogue(calibrate_catalogue(inst, sols), list(sols))
    attrs = {"calibration": {f: {k: v for k, v in d.items() if k != "extra"}
                             for f, d in solutions.items()},
             "source": str(Path(inst_path).name)}
    paths = export_catalogue(cal, out_dir, name, h5_path=h5_path, attrs=attrs)
    counts = {f: int((~np.asarray(cal[f].mask)).sum()) if hasattr(cal[f], "mask")
              else len(cal) for f in sols if f in cal.colnames}
    return {**paths, "checksum": sha256_file(paths["ecsv"]), "n_stars": len(cal),
            "bands": sorted(counts), "n_calibrated": counts}
