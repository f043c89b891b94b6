"""Isochrones: grid readers in one internal form (packaged PARSEC grid, CMD 3.x files), an
HDF5 library cache, interpolation in age and metallicity, and extinction per band (constant,
or per star from its colour: :class:`ExtinctionModel`)."""

from tgpcore.isochrones.cmd import (
    CMD_BAND_NAMES,
    CMDFormatError,
    read_cmd,
    read_cmd_file,
    uwastro_cmd37_path,
)
from tgpcore.isochrones.extinction import BANDPASSES, extinction_ratio, extinction_ratios
from tgpcore.isochrones.grid import (
    PARAMETER_COLUMNS,
    STANDARD_BANDS,
    IsochroneGrid,
    load_packaged_grid,
    packaged_grid_path,
)
from tgpcore.isochrones.interpolate import IsochroneInterpolator
from tgpcore.isochrones.reddening import ExtinctionModel
from tgpcore.isochrones.store import default_cache_dir, load_grid, read_grid_hdf5, write_grid_hdf5

__all__ = [
    "BANDPASSES",
    "CMD_BAND_NAMES",
    "PARAMETER_COLUMNS",
    "STANDARD_BANDS",
    "CMDFormatError",
    "ExtinctionModel",
    "IsochroneGrid",
    "IsochroneInterpolator",
    "default_cache_dir",
    "extinction_ratio",
    "extinction_ratios",
    "load_grid",
    "load_packaged_grid",
    "packaged_grid_path",
    "read_cmd",
    "read_cmd_file",
    "read_grid_hdf5",
    "uwastro_cmd37_path",
    "write_grid_hdf5",
]
