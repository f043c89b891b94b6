"""The model cluster in observable space: weighted points along the isochrone and across the
unresolved-binary sequence.

Single stars: the isochrone (EEP arrays of :class:`~tgpcore.isochrones.IsochroneInterpolator`)
is shifted by the distance modulus and the extinction A_b = R_b E(B-V) of each band, turned into
the fit's observables, and cut into straight segments. Each segment carries the number of stars
the Kroupa IMF puts between its end masses and is split into points closer than
``spacing`` times the narrowest kernel (the intrinsic scatter), so that the sum over points is
the line integral along the isochrone to better than 1e-3.

Binaries: a primary of initial mass m1 on the isochrone and a secondary of mass q m1 on the
same isochrone (fluxes added per band; a secondary below the grid's lowest mass adds no
light), with q uniform on [q_min, 1] as in the simulator. Each primary's track from q_min to
q = 1 is cut into levels of equal brightening (:mod:`tgpcore.fitting.binaries`): fine, sharp
levels up to 0.15 mag above the single-star sequence, which the binary sheet overlaps and where
it must be as sharp as the sequence; coarse levels above, whose points are blurred by
``binary_blur``. Binaries whose primary has left the subgiant branch look like the giant alone
and count as single stars. Point weights include the binary fraction, so each model is built for
one f_bin.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tgpcore.fitting.imf import kroupa_cumulative
from tgpcore.fitting.kernel import HAVE_NUMBA

if HAVE_NUMBA:
    from numba import njit


@dataclass(frozen=True)
class ModelSettings:
    """How the model cluster is built and compared with the stars.

    Attributes
    ----------
    intrinsic_scatter : float
        Resolution of the model (mag): the smallest intrinsic scatter (added in quadrature to
        every observable's error; fitted above this floor) it can represent; points are
        ``spacing`` times this apart.
    spacing : float
        Largest distance between neighbouring points in units of their kernel width
        (1.75: the sum over points matches the continuous integral to ~1e-3).
    q_min : float
        Lower end of the flat mass-ratio distribution.
    binary_sharp_step, binary_sharp_max, binary_wide_step : float
        Brightening levels of the binary tracks (mag): steps of ``binary_sharp_step`` up to
        ``binary_sharp_max``, then ``binary_wide_step`` up to the twins' 0.753.
    binary_blur : float
        Extra width (mag) of the upper binary levels' points.
    outlier_fraction : float
        Fraction of would-be members that follow the field density instead of the isochrone
        (blue stragglers, variables, bad photometry, contaminants with high weights).
    lf_floor : float
        Floor (per mag) added to the model luminosity function in the conditional likelihood,
        so that stars beyond the isochrone's magnitude range are outliers rather than 0/0.
    window_sigma : float
        Each star sees the model points within this many sigma in its anchor magnitude.
    margin_mag : float
        Model points are kept this far beyond the stars' anchor range.
    colour_dependent_extinction : bool
        Extinction of each isochrone point from its own colour/Teff
        (:class:`tgpcore.isochrones.reddening.ExtinctionModel`); ``False``: one coefficient per
        band (a hot star's).
    extinction_law, extinction_rv : str, float
        The extinction law (``dust_extinction`` name) and its R(V).
    gaia_extinction : {'babusiaux2018', 'bandpass'}
        Gaia bands from the published relation or from the band-averaged law.
    """

    intrinsic_scatter: float = 0.015
    spacing: float = 1.75
    q_min: float = 0.1
    binary_sharp_step: float = 0.025
    binary_sharp_max: float = 0.15
    binary_wide_step: float = 0.06
    binary_blur: float = 0.03
    outlier_fraction: float = 0.02
    lf_floor: float = 1e-4
    window_sigma: float = 4.0
    margin_mag: float = 0.5
    colour_dependent_extinction: bool = True
    extinction_law: str = "F99"
    extinction_rv: float = 3.1
    gaia_extinction: str = "babusiaux2018"

    def to_dict(self) -> dict:
        """Plain data."""
        return asdict(self)

    @property
    def narrow_step(self) -> float:
        """Point spacing of the sharp sets (mag)."""
        return self.spacing * self.intrinsic_scatter

    @property
    def wide_width(self) -> float:
        """Kernel width of the blurred binary points (mag, without the star's error)."""
        return float(np.hypot(self.intrinsic_scatter, self.binary_blur))


@dataclass
class PointSet:
    """Model points in observable space, sorted by the anchor (column 0)."""

    obs: np.ndarray
    weight: np.ndarray

    @classmethod
    def empty(cls, d: int) -> PointSet:
        """No points."""
        return cls(np.zeros((0, d)), np.zeros(0))

    @classmethod
    def concat(cls, parts: list[PointSet], d: int) -> PointSet:
        """Several sets as one, sorted."""
        parts = [p for p in parts if len(p.weight)]
        if not parts:
            return cls.empty(d)
        return cls(np.vstack([p.obs for p in parts]),
                   np.concatenate([p.weight for p in parts])).sorted()

    def sorted(self) -> PointSet:
        """The same points ordered by anchor magnitude."""
        order = np.argsort(self.obs[:, 0], kind="stable")
        return PointSet(np.ascontiguousarray(self.obs[order]), self.weight[order])


def _subdivide_numpy(starts: np.ndarray, ends: np.ndarray, seg_w: np.ndarray, step: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.linalg.norm(ends - starts, axis=1)
    n = np.maximum(np.ceil(lengths / step).astype(np.int64), 1)
    seg = np.repeat(np.arange(len(n)), n)
    j = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    t = ((j + 0.5) / n[seg])[:, None]
    return starts[seg] + t * (ends[seg] - starts[seg]), seg_w[seg] / n[seg]


if HAVE_NUMBA:
    @njit(cache=True, nogil=True)
    def _subdivide_jit(starts, ends, seg_w, step):  # pragma: no cover - compiled
        m, d = starts.shape
        counts = np.empty(m, np.int64)
        total = 0
        for k in range(m):
            length = 0.0
            for j in range(d):
                diff = ends[k, j] - starts[k, j]
                length += diff * diff
            c = int(np.ceil(np.sqrt(length) / step))
            counts[k] = c if c > 1 else 1
            total += counts[k]
        pts = np.empty((total, d))
        w = np.empty(total)
        i = 0
        for k in range(m):
            c = counts[k]
            for q in range(c):
                t = (q + 0.5) / c
                for j in range(d):
                    pts[i, j] = starts[k, j] + t * (ends[k, j] - starts[k, j])
                w[i] = seg_w[k] / c
                i += 1
        return pts, w


def _subdivide(starts: np.ndarray, ends: np.ndarray, seg_w: np.ndarray, step: float
               ) -> PointSet:
    """Points at the centres of equal sub-segments (no longer than ``step``) of the segments
    starts[k] -> ends[k], each carrying seg_w[k] split evenly."""
    d = starts.shape[1]
    use = seg_w > 0
    starts, ends, seg_w = starts[use], ends[use], seg_w[use]
    if len(seg_w) == 0:
        return PointSet.empty(d)
    if HAVE_NUMBA:
        pts, w = _subdivide_jit(np.ascontiguousarray(starts, dtype=np.float64),
                                np.ascontiguousarray(ends, dtype=np.float64),
                                np.ascontiguousarray(seg_w, dtype=np.float64), float(step))
    else:
        pts, w = _subdivide_numpy(starts, ends, seg_w, step)
    return PointSet(pts, w)


def build_points(eep: dict[str, np.ndarray], bands: tuple[str, ...], design: np.ndarray,
                 ratios: np.ndarray, dm: float, ebv: float, anchor_range: tuple[float, float],
                 settings: ModelSettings, f_bin: float = 0.0,
                 tracks: tuple[np.ndarray, np.ndarray] | None = None,
                 wide_levels: np.ndarray | None = None) -> tuple[PointSet, PointSet]:
    """The model cluster's points: a sharp set and a blurred set.

    Parameters
    ----------
    eep : dict of ndarray
        Interpolated isochrone (``Mini``, ``label`` and absolute magnitudes per band).
    bands : tuple of str
        Bands, in the column order of ``design`` and of the tracks.
    design : ndarray, shape (n_obs, n_bands)
        Observables as combinations of bands (anchor first).
    ratios : ndarray, shape (n_bands,) or (n_points, n_bands)
        A_band / E(B-V): one per band, or one per isochrone point and band (colour-dependent
        extinction, :class:`tgpcore.isochrones.reddening.ExtinctionModel`; binaries take their
        primary's).
    dm, ebv : float
        Distance modulus and reddening E(B-V) (mag).
    anchor_range : (float, float)
        Anchor magnitudes spanned by the stars.
    settings : ModelSettings
        Resolution.
    f_bin : float
        Fraction of systems that are binaries.
    tracks : (ndarray, ndarray), optional
        Binary magnitudes (n_eep, n_levels, n_bands) and level probabilities (n_eep,
        n_levels) aligned with ``eep`` (:meth:`tgpcore.fitting.binaries.BinaryTracks.tracks`);
        without them there are no binaries.
    wide_levels : ndarray of bool, optional
        Which levels are blurred.

    Returns
    -------
    sharp, wide : PointSet
        ``sharp``: single stars and the lower binary levels, kernel = star error + intrinsic
        scatter; ``wide``: the upper binary levels, kernel widened by ``binary_blur``. Weights
        are numbers of systems (Kroupa IMF, arbitrary units shared by both sets), binary
        fraction included; points sorted by anchor magnitude.
    """
    d = design.shape[0]
    mags = np.column_stack([eep[b] for b in bands])
    mini = eep["Mini"]
    good = np.all(np.isfinite(mags), axis=1) & np.isfinite(mini)
    mags, mini, label = mags[good], mini[good], eep["label"][good]
    if len(mini) < 2:
        return PointSet.empty(d), PointSet.empty(d)
    ratios = np.asarray(ratios, float)
    shift = dm + (ratios[good] if ratios.ndim == 2 else ratios) * ebv
    obs = (mags + shift) @ design.T
    seg_w = np.diff(kroupa_cumulative(mini))
    # no segment across a phase missing from the interpolated isochrone
    phase_jump = np.diff(label) > 1
    lo, hi = anchor_range[0] - settings.margin_mag, anchor_range[1] + settings.margin_mag
    a0, a1 = obs[:-1, 0], obs[1:, 0]
    seg = np.flatnonzero((np.minimum(a0, a1) <= hi) & (np.maximum(a0, a1) >= lo) & ~phase_jump)
    if len(seg) == 0:
        return PointSet.empty(d), PointSet.empty(d)
    f = float(np.clip(f_bin, 0.0, 1.0)) if tracks is not None else 0.0
    if f > 0:
        bmag, bprob = tracks[0][good], tracks[1][good]
        primary = bprob.sum(axis=1) > 0
        pair_ok = primary[seg] & primary[seg + 1]
    else:
        pair_ok = np.zeros(len(seg), bool)
    share = np.where(pair_ok, 1.0 - f, 1.0)
    if f <= 0 or not pair_ok.any():
        return (_subdivide(obs[seg], obs[seg + 1], seg_w[seg] * share,
                           settings.narrow_step).sorted(), PointSet.empty(d))
    bseg = seg[pair_ok]
    bobs = (bmag + (shift[:, None, :] if shift.ndim == 2 else shift)) @ design.T  # (n, L, d)
    wide_levels = np.zeros(bprob.shape[1], bool) if wide_levels is None else \
        np.asarray(wide_levels, bool)
    step_w = settings.spacing * settings.wide_width
    out = []
    for wide in (False, True):
        lev = np.flatnonzero(wide_levels == wide)
        w = f * seg_w[bseg][:, None] * 0.5 * (bprob[bseg][:, lev] + bprob[bseg + 1][:, lev])
        starts = bobs[bseg][:, lev].reshape(-1, d)
        ends = bobs[bseg + 1][:, lev].reshape(-1, d)
        weights = w.ravel()
        if not wide:  # the single stars share the sharp set
            starts = np.vstack([obs[seg], starts])
            ends = np.vstack([obs[seg + 1], ends])
            weights = np.r_[seg_w[seg] * share, weights]
        out.append(_subdivide(starts, ends, weights,
                              step_w if wide else settings.narrow_step).sorted())
    return out[0], out[1]
