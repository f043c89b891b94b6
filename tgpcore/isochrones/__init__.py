"""Isochrones: grid readers in one internal form, and extinction per photometric band."""

from tgpcore.isochrones.extinction import BANDPASSES, extinction_ratio, extinction_ratios
from tgpcore.isochrones.grid import (
    PARAMETER_COLUMNS,
    STANDARD_BANDS,
    IsochroneGrid,
    load_packaged_grid,
    packaged_grid_path,
)

__all__ = [
    "BANDPASSES",
    "PARAMETER_COLUMNS",
    "STANDARD_BANDS",
    "IsochroneGrid",
    "extinction_ratio",
    "extinction_ratios",
    "load_packaged_grid",
    "packaged_grid_path",
]
