"""Isochrones between grid points: interpolation in age and metallicity along equivalent
evolutionary points (EEPs).

Each grid isochrone is cut into its PARSEC evolutionary phases (the ``label`` column: 0 PMS,
1 MS, 2 SGB, 3 RGB, 4-6 core-He burning, 7 early AGB; the TP-AGB and later, labels >= 8, are
left out as in the simulator). Inside a phase, points are placed at equal steps of normalised
path length along the track in the (log Teff, log L) plane, with log Teff weighted by
:data:`TEFF_WEIGHT` so that the turn-off hook and the subgiant branch get their share of
points. Point *j* of phase *L* is then the same evolutionary state on every isochrone, and an
isochrone at (log age, [M/H]) is the bilinear combination of the four surrounding grid
isochrones, point by point, of every column (log initial mass, masses, log L, log Teff, log g,
absolute magnitudes).

A phase present on only some of the four corners is kept when the corners that have it carry at
least half of the interpolation weight (their weights renormalised), and dropped otherwise.
Outside the grid, the nearest edge is used (no extrapolation).
"""

from __future__ import annotations

import functools

import numpy as np
from astropy.table import Table

from tgpcore.isochrones.grid import IsochroneGrid

#: EEPs per phase (first PARSEC label of the phase -> number of points). The pre-main
#: sequence (label 0) and the main sequence (1) are one phase: where the grid puts the boundary
#: between them changes erratically from one age to the next.
EEP_PER_PHASE: dict[int, int] = {1: 200, 2: 50, 3: 80, 4: 50, 5: 30, 6: 30, 7: 40}
#: Labels that belong to each phase.
PHASE_LABELS: dict[int, tuple[int, ...]] = {1: (0, 1), 2: (2,), 3: (3,), 4: (4,), 5: (5,),
                                            6: (6,), 7: (7,)}
#: Weight of log Teff against log L in the path length that places the EEPs.
TEFF_WEIGHT = 10.0
#: Weight of |d log Mini| added to the path length (initial mass is the natural coordinate
#: on the unevolved and pre-main sequence).
MASS_WEIGHT = 10.0
#: Columns interpolated besides the bands (``Mini`` is interpolated in log).
_BASE = ("Mini", "Mass", "logL", "logTe", "logg")


def _resample_phase(cols: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """``n`` points at equal steps of normalised path length along one phase."""
    logl, logte = cols["logL"], cols["logTe"]
    m = len(logl)
    if m == 1:
        return {k: np.repeat(v, n) for k, v in cols.items()}
    step = np.hypot(np.diff(logl), TEFF_WEIGHT * np.diff(logte)) + MASS_WEIGHT * np.abs(
        np.diff(cols["Mini"]))
    if not np.all(np.isfinite(step)) or step.sum() <= 0:
        step = np.ones(m - 1)  # degenerate track: fall back to point index
    s = np.r_[0.0, np.cumsum(step)]
    s /= s[-1]
    # strictly increasing abscissa for np.interp
    s = s + np.arange(m) * 1e-12
    s /= s[-1]
    u = np.linspace(0.0, 1.0, n)
    return {k: np.interp(u, s, v) for k, v in cols.items()}


class IsochroneInterpolator:
    """Isochrones at any (log age, [M/H]) inside a grid, by EEP interpolation.

    Parameters
    ----------
    grid : IsochroneGrid
        The grid.
    bands : sequence of str, optional
        Bands to carry (all of the grid's by default).
    max_label : int
        Highest PARSEC phase kept (7 = early AGB).

    Notes
    -----
    EEP tables of grid nodes are built on first use and kept (a few ms each).
    """

    def __init__(self, grid: IsochroneGrid, bands: tuple[str, ...] | list[str] | None = None,
                 max_label: int = 7) -> None:
        self.grid = grid
        self.bands = tuple(bands) if bands is not None else grid.bands
        missing = [b for b in self.bands if b not in grid.table.colnames]
        if missing:
            raise KeyError(f"grid {grid.source!r} has no bands {missing}")
        self.phases = tuple(k for k in sorted(EEP_PER_PHASE) if k <= max_label)
        self.columns = _BASE + self.bands
        self.ages = grid.ages()
        self.mhs = grid.metallicities()
        self._offsets = {}
        start = 0
        for ph in self.phases:
            self._offsets[ph] = (start, start + EEP_PER_PHASE[ph])
            start += EEP_PER_PHASE[ph]
        self.n_eep = start
        self.labels = np.concatenate([np.full(EEP_PER_PHASE[p], p, np.int16)
                                      for p in self.phases])
        self._node = functools.lru_cache(maxsize=None)(self._build_node)
        self._node_filled = functools.lru_cache(maxsize=None)(self._fill_node)

    def __repr__(self) -> str:
        return (f"IsochroneInterpolator({self.grid.source!r}, {len(self.ages)} ages x "
                f"{len(self.mhs)} [M/H], bands={self.bands})")

    @property
    def age_range(self) -> tuple[float, float]:
        """Smallest and largest log age of the grid."""
        return float(self.ages[0]), float(self.ages[-1])

    @property
    def mh_range(self) -> tuple[float, float]:
        """Smallest and largest [M/H] of the grid."""
        return float(self.mhs[0]), float(self.mhs[-1])

    def _build_node(self, i_age: int, i_mh: int) -> np.ndarray:
        """EEP table (n_eep, n_columns) of one grid node, NaN rows for missing phases."""
        iso = self.grid.isochrone(float(self.ages[i_age]), float(self.mhs[i_mh]))
        out = np.full((self.n_eep, len(self.columns)), np.nan)
        label = np.asarray(iso["label"])
        for ph in self.phases:
            sel = np.isin(label, PHASE_LABELS[ph])
            if not sel.any():
                continue
            cols = {c: np.asarray(iso[c], float)[sel] for c in self.columns}
            cols["Mini"] = np.log10(cols["Mini"])
            good = np.all([np.isfinite(cols[c]) for c in ("Mini", "logL", "logTe")], axis=0)
            if not good.any():
                continue
            cols = {k: v[good] for k, v in cols.items()}
            res = _resample_phase(cols, EEP_PER_PHASE[ph])
            a, b = self._offsets[ph]
            out[a:b] = np.column_stack([res[c] for c in self.columns])
        return out

    def _fill_node(self, i_age: int, i_mh: int) -> tuple[np.ndarray, np.ndarray]:
        node = self._node(i_age, i_mh)
        ok = np.isfinite(node[:, 0])
        return np.where(ok[:, None], np.nan_to_num(node), 0.0), ok.astype(float)

    def _corners(self, log_age: float, mh: float):
        def axis(grid_vals: np.ndarray, x: float) -> list[tuple[int, float]]:
            if len(grid_vals) == 1 or x <= grid_vals[0]:
                return [(0, 1.0)]
            if x >= grid_vals[-1]:
                return [(len(grid_vals) - 1, 1.0)]
            j = int(np.searchsorted(grid_vals, x, side="right") - 1)
            t = (x - grid_vals[j]) / (grid_vals[j + 1] - grid_vals[j])
            return [(j, 1.0 - t), (j + 1, t)]

        return [(ia, im, wa * wm) for ia, wa in axis(self.ages, log_age)
                for im, wm in axis(self.mhs, mh) if wa * wm > 0.0]

    def corners(self, log_age: float, mh: float) -> list[tuple[int, int, float]]:
        """Grid nodes (age index, [M/H] index) around (log age, [M/H]) and their bilinear
        weights (nearest edge outside the grid)."""
        return self._corners(float(log_age), float(mh))

    def combine_nodes(self, log_age: float, mh: float, node_fn) -> tuple[np.ndarray, np.ndarray]:
        """Bilinear combination of per-node arrays defined on the EEPs.

        Parameters
        ----------
        log_age, mh : float
            Where.
        node_fn : callable
            ``node_fn(i_age, i_mh) -> (filled, ok)``: an array (n_eep, ...) with zeros where the
            node lacks a phase, and ``ok`` (n_eep,) 1.0 where it has it.

        Returns
        -------
        values, keep : ndarray
            The combination on the EEPs kept (a phase is kept whole when the corners that have
            it carry at least half of the weight, renormalised), and the keep mask (n_eep,).
        """
        acc = None
        wsum = np.zeros(self.n_eep)
        for ia, im, w in self._corners(float(log_age), float(mh)):
            filled, ok = node_fn(ia, im)
            acc = w * filled if acc is None else acc + w * filled
            wsum += w * ok
        keep = wsum >= 0.5 - 1e-9
        for ph in self.phases:
            a, b = self._offsets[ph]
            if not np.all(keep[a:b]):
                keep[a:b] = False
        shape = (-1,) + (1,) * (acc.ndim - 1)
        return acc[keep] / wsum[keep].reshape(shape), keep

    def eep_arrays(self, log_age: float, mh: float) -> dict[str, np.ndarray]:
        """The interpolated isochrone as arrays (the fitter's fast path).

        Parameters
        ----------
        log_age : float
            log10 of the age in years.
        mh : float
            [M/H] in dex.

        Returns
        -------
        dict of ndarray
            ``Mini`` (solar masses, non-decreasing), ``Mass``, ``logL``, ``logTe``, ``logg``,
            ``label`` (phase: 1 = pre-main and main sequence, 2 subgiants, ...) and one array
            per band (absolute magnitudes), over the EEPs of the phases kept, in evolutionary
            order; ``eep`` holds the EEP indices (for arrays aligned with these rows).
        """
        vals, keep = self.combine_nodes(log_age, mh, self._node_filled)
        out = {c: vals[:, k] for k, c in enumerate(self.columns)}
        out["Mini"] = np.maximum.accumulate(10.0 ** out["Mini"])
        out["label"] = self.labels[keep]
        out["eep"] = np.flatnonzero(keep)
        return out

    def isochrone(self, log_age: float, mh: float) -> Table:
        """The interpolated isochrone in the internal form.

        Parameters
        ----------
        log_age : float
            log10 of the age in years.
        mh : float
            [M/H] in dex.

        Returns
        -------
        astropy.table.Table
            Columns ``logAge MH Zini Mini Mass label logL logTe logg`` and the bands; ``meta``
            has ``logAge``, ``MH``, ``method`` ('EEP interpolation ...') and ``source``.
            ``Zini`` is NaN (not interpolated).
        """
        arr = self.eep_arrays(log_age, mh)
        n = len(arr["Mini"])
        t = Table()
        t["logAge"] = np.full(n, float(log_age))
        t["MH"] = np.full(n, float(mh))
        t["Zini"] = np.full(n, np.nan)
        for c in ("Mini", "Mass", "label", "logL", "logTe", "logg", *self.bands):
            t[c] = arr[c]
        for b in self.bands:
            t[b].unit = "mag"
        t["Mini"].unit = t["Mass"].unit = "solMass"
        t["MH"].unit = "dex"
        t.meta = {"logAge": float(log_age), "MH": float(mh),
                  "method": "EEP interpolation (bilinear in log age and [M/H], points at equal "
                            "normalised path length per PARSEC phase)",
                  "source": self.grid.source}
        return t

    def as_grid(self, log_age: float, mh: float) -> IsochroneGrid:
        """A one-isochrone :class:`IsochroneGrid` at (log age, [M/H]) (e.g. for the simulator,
        whose ``sample_cluster`` takes a grid and uses its nearest isochrone)."""
        return IsochroneGrid(self.isochrone(log_age, mh), source=f"{self.grid.source}, "
                                                                  "EEP-interpolated")
