"""Unresolved binaries along an isochrone: for each primary, the track of the system from a
faint companion (q -> q_min) to a twin (q = 1, 0.753 mag brighter), cut into levels of equal
brightening in the anchor band.

A flat mass-ratio distribution puts most binaries close to the single-star sequence (a q = 0.4
companion of a G dwarf adds 0.03 mag) but, for K and M dwarfs whose luminosity grows slowly with
mass, far from it. Levels of q placed on a fixed grid are therefore unevenly spaced in the
colour-magnitude diagram: lumpy where the mass-luminosity relation is shallow, which biases a fit
(by -0.02 to -0.04 mag in distance modulus for 30 % binaries). Here each primary gets its own q
levels, at equal steps of its actual brightening Δa: fine steps up to ``sharp_max`` (the part
that overlaps the single-star sequence and must be as sharp as it), coarse steps above (the
upper sheet, which the likelihood blurs). A level carries the probability of its q interval.

Tracks are computed once per grid node, on that node's EEPs, and interpolated between nodes
like the isochrones themselves (same EEPs, same level indices).
"""

from __future__ import annotations

import functools

import numpy as np

from tgpcore.isochrones.interpolate import IsochroneInterpolator

#: Brightening of a twin (mag): 2.5 log10(2).
TWIN = 2.5 * np.log10(2.0)


def _combine(m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return m1 - 2.5 * np.log10(1.0 + 10.0 ** (-0.4 * (m2 - m1)))


class BinaryTracks:
    """Binary-system magnitudes per EEP and brightening level, interpolated in age and [M/H].

    Parameters
    ----------
    interpolator : IsochroneInterpolator
        The isochrones (their bands are the bands of the tracks).
    anchor : str
        Band whose brightening defines the levels (the fit's anchor, V or G).
    q_min : float
        Lower end of the flat mass-ratio distribution (the simulator's 0.1).
    sharp_step, sharp_max : float
        Level step (mag) up to ``sharp_max`` mag of brightening.
    wide_step : float
        Level step above ``sharp_max``.
    max_label : int
        Primaries up to this phase (2 = subgiants); binaries with giant primaries look like the
        giant alone and are counted as single stars by the caller.
    n_fine : int
        Mass ratios sampled per primary to place the levels.
    """

    def __init__(self, interpolator: IsochroneInterpolator, anchor: str, q_min: float = 0.1,
                 sharp_step: float = 0.025, sharp_max: float = 0.15, wide_step: float = 0.09,
                 max_label: int = 2, n_fine: int = 160) -> None:
        if anchor not in interpolator.bands:
            raise KeyError(f"anchor band {anchor!r} not among {interpolator.bands}")
        self.interp = interpolator
        self.bands = interpolator.bands
        self.anchor = self.bands.index(anchor)
        self.q_min = q_min
        n_sharp = max(1, int(np.ceil(sharp_max / sharp_step)))
        n_wide = max(1, int(np.ceil((TWIN - sharp_max) / wide_step)))
        self.edges = np.r_[np.linspace(0.0, sharp_max, n_sharp + 1),
                           np.linspace(sharp_max, TWIN, n_wide + 1)[1:]]
        self.is_wide = np.r_[np.zeros(n_sharp, bool), np.ones(n_wide, bool)]
        self.n_levels = len(self.edges) - 1
        self.max_label = max_label
        # fine q grid, denser towards q = 1 where the brightening grows fastest
        t = np.linspace(0.0, 1.0, n_fine)
        self.q_fine = q_min + (1.0 - q_min) * (1.0 - (1.0 - t) ** 1.5)
        self._node = functools.lru_cache(maxsize=None)(self._build_node)
        self._band_cols = [interpolator.columns.index(b) for b in self.bands]

    def _build_node(self, i_age: int, i_mh: int) -> tuple[np.ndarray, np.ndarray]:
        """(filled, ok): filled (n_eep, n_levels, n_bands + 1) holds the level magnitudes and,
        last, the level probabilities; zero rows where the EEP is no primary."""
        node = self.interp._node(i_age, i_mh)  # noqa: SLF001 - same package family
        n_eep, nb, nl = self.interp.n_eep, len(self.bands), self.n_levels
        filled = np.zeros((n_eep, nl, nb + 1))
        ok = np.isfinite(node[:, 0]).astype(float)
        labels = self.interp.labels
        mini = 10.0 ** node[:, 0]
        mags = node[:, self._band_cols]
        ms = (labels <= 1) & np.isfinite(node[:, 0]) & np.all(np.isfinite(mags), axis=1)
        prim = np.flatnonzero((labels <= self.max_label) & np.isfinite(node[:, 0])
                              & np.all(np.isfinite(mags), axis=1))
        if ms.sum() < 2 or len(prim) == 0:
            return filled, ok
        ms_mini = np.maximum.accumulate(mini[ms])
        ms_mags = mags[ms]
        m1 = mini[prim]
        m2 = m1[:, None] * self.q_fine[None, :]
        lit = m2 >= ms_mini[0]
        comb = np.empty((len(prim), len(self.q_fine), nb))
        for b in range(nb):
            sec = np.where(lit, np.interp(m2, ms_mini, ms_mags[:, b]), np.inf)
            comb[:, :, b] = _combine(mags[prim, b][:, None], sec)
        gain = mags[prim, self.anchor][:, None] - comb[:, :, self.anchor]
        gain = np.maximum.accumulate(np.clip(gain, 0.0, None), axis=1)
        edges, q = self.edges, self.q_fine
        for r, k in enumerate(prim):
            g = gain[r] + np.arange(len(q)) * 1e-12  # strictly increasing for interp
            q_edges = np.interp(edges, g, q)
            q_edges[0], q_edges[-1] = self.q_min, 1.0
            dq = np.diff(q_edges) / (1.0 - self.q_min)
            # a level's position: the track at its mean mass ratio (flat q inside the level);
            # levels the track skips (a jump in brightening) get no weight
            qc = 0.5 * (q_edges[1:] + q_edges[:-1])
            for b in range(nb):
                filled[k, :, b] = np.interp(qc, q, comb[r, :, b])
            filled[k, :, nb] = dq
        return filled, ok

    def tracks(self, log_age: float, mh: float) -> tuple[np.ndarray, np.ndarray]:
        """Binary magnitudes and level probabilities at (log age, [M/H]).

        Returns
        -------
        mags : ndarray, shape (n_kept_eep, n_levels, n_bands)
            Absolute magnitudes of the systems, rows aligned with
            :meth:`IsochroneInterpolator.eep_arrays`; zero probability where the EEP is no
            primary.
        prob : ndarray, shape (n_kept_eep, n_levels)
            Probability of each level (sums to 1 over levels for a primary).
        """
        vals, _ = self.interp.combine_nodes(log_age, mh, self._node)
        nb = len(self.bands)
        return vals[:, :, :nb], vals[:, :, nb]
