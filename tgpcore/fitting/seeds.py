"""Starting points for the global search: the colour-magnitude diagram matched against
isochrone templates.

For each (log age, [M/H]) of a coarse grid, the model cluster at distance modulus 0 and no
reddening is binned into a smoothed map of the colour distribution at each magnitude (log). Shifting it by
(E(colour), dm + A_anchor) is a translation, so the score of every (dm, E(B-V)) at once is the
cross-correlation of that map with the stars' histogram (by FFT). The best shift of each
template, and the best templates, seed the optimisers. Differential evolution alone finds the
narrow basin of an old cluster (turn-off and giants) rarely when a young, reddened solution
offers a wide one; scanning all templates does not miss it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from tgpcore.fitting.data import ClusterPhotometry
from tgpcore.fitting.synthetic import ModelSettings, build_points
from tgpcore.isochrones.interpolate import IsochroneInterpolator


@dataclass
class Seed:
    """A starting point: parameters and the template-matching score (higher is better)."""

    log_age: float
    mh: float
    dm: float
    ebv: float
    score: float


def colour_vector(data: ClusterPhotometry) -> np.ndarray:
    """Coefficients over the observables of the colour used for matching (BP-RP, B-V, or the
    first other observable minus the anchor)."""
    names = data.names
    c = np.zeros(len(names))
    if "BP-RP" in names:
        c[names.index("BP-RP")] = 1.0
    elif "BP" in names and "RP" in names:
        c[names.index("BP")], c[names.index("RP")] = 1.0, -1.0
    elif "B-V" in names:
        c[names.index("B-V")] = 1.0
    elif "B" in names and "V" in names:
        c[names.index("B")], c[names.index("V")] = 1.0, -1.0
    else:
        j = 1
        c[j] = 1.0
        if not data.is_colour()[j]:
            c[0] = -1.0
    return c


def template_seeds(data: ClusterPhotometry, interp: IsochroneInterpolator, bands: tuple[str, ...],
                   design: np.ndarray, ratios: np.ndarray, ages: np.ndarray, mhs: np.ndarray,
                   dm_range: tuple[float, float], ebv_range: tuple[float, float],
                   n_best: int = 6, h_colour: float = 0.025, h_mag: float = 0.1
                   ) -> list[Seed]:
    """Best (dm, E(B-V)) of each template and the ``n_best`` best templates overall.

    Parameters
    ----------
    data : ClusterPhotometry
        The stars (weights: membership probabilities).
    interp : IsochroneInterpolator
        Isochrones.
    bands, design, ratios
        As in :func:`tgpcore.fitting.synthetic.build_points`.
    ages, mhs : ndarray
        Template grid.
    dm_range, ebv_range : (float, float)
        Allowed distance moduli and reddenings.
    n_best : int
        Seeds returned, best first, at most one per age step and [M/H] of the grid.
    h_colour, h_mag : float
        Map resolution (mag).

    Returns
    -------
    list of Seed
    """
    cvec = colour_vector(data)
    ok = np.isfinite(data.values @ np.where(cvec != 0, 1.0, 0.0)) if np.any(cvec != 0) else \
        np.ones(data.n_stars, bool)
    vals = np.nan_to_num(data.values)
    col = vals[ok] @ cvec
    mag = vals[ok, 0]
    w = data.p_member[ok]
    if len(col) < 5:
        return []
    # the stars' histogram
    xd0, yd0 = np.percentile(col, 0.5) - 0.2, mag.min() - 0.5
    nxd = int(np.ceil((np.percentile(col, 99.5) + 0.2 - xd0) / h_colour)) + 1
    nyd = int(np.ceil((mag.max() + 0.5 - yd0) / h_mag)) + 1
    ix = np.clip(((col - xd0) / h_colour).astype(int), 0, nxd - 1)
    iy = np.clip(((mag - yd0) / h_mag).astype(int), 0, nyd - 1)
    hd = np.zeros((nxd, nyd))
    np.add.at(hd, (ix, iy), w)
    shift_per_ebv = design @ ratios            # observables per unit E(B-V)
    e_col = float(shift_per_ebv @ cvec)         # colour excess per unit E(B-V)
    a_anchor = float(shift_per_ebv[0])          # anchor extinction per unit E(B-V)
    flat = ModelSettings(intrinsic_scatter=0.05, spacing=1.0)
    seeds: list[Seed] = []
    for age in ages:
        for mh in mhs:
            eep = interp.eep_arrays(float(age), float(mh))
            pts, _ = build_points(eep, bands, design, ratios, 0.0, 0.0, (-10.0, 25.0), flat)
            if len(pts.weight) < 2:
                continue
            mc = pts.obs @ cvec
            ma = pts.obs[:, 0]
            xm0, ym0 = mc.min() - 0.5, ma.min() - 1.0
            nxm = int(np.ceil((mc.max() + 0.5 - xm0) / h_colour)) + 1
            nym = int(np.ceil((ma.max() + 1.0 - ym0) / h_mag)) + 1
            hm = np.zeros((nxm, nym))
            np.add.at(hm, (((mc - xm0) / h_colour).astype(int),
                           ((ma - ym0) / h_mag).astype(int)), pts.weight)
            hm = gaussian_filter(hm, (0.04 / h_colour, 0.15 / h_mag), mode="constant")
            # colour distribution at each magnitude (as the likelihood, conditional on the
            # magnitude: the luminosity function must not decide), as a log density above an
            # empty-cell floor: 0 where the model has no stars, so the FFT's zero padding
            # means "no model there" too
            row = hm.sum(axis=0, keepdims=True)
            hm = np.where(row > 1e-6 * row.max(), hm / np.maximum(row, 1e-300), 0.0)
            logm = np.log1p(hm / 1e-3)
            # score(sx, sy) = sum_ij hd[i, j] logm[i + sx', j + sy'] by FFT over all overlaps
            sx, sy = nxd + nxm, nyd + nym
            fx = np.fft.rfft2(logm, s=(sx, sy))
            fd = np.fft.rfft2(hd[::-1, ::-1], s=(sx, sy))
            corr = np.fft.irfft2(fx * fd, s=(sx, sy))
            # corr[k, l] pairs data cell (i, j) with model cell (i + k - nxd + 1, j + l - nyd + 1)
            k = np.arange(sx)[:, None] - (nxd - 1)
            lgrid = np.arange(sy)[None, :] - (nyd - 1)
            dcol = xd0 - xm0 - k * h_colour           # data colour - model colour
            dmag = yd0 - ym0 - lgrid * h_mag          # data magnitude - model magnitude
            ebv = np.broadcast_to(dcol / e_col, corr.shape)
            dm = dmag - a_anchor * ebv
            allowed = ((ebv >= ebv_range[0] - 0.02) & (ebv <= ebv_range[1])
                       & (dm >= dm_range[0]) & (dm <= dm_range[1]))
            if not allowed.any():
                continue
            score = np.where(allowed, corr, -np.inf)
            b = np.unravel_index(int(np.argmax(score)), score.shape)
            seeds.append(Seed(float(age), float(mh), float(dm[b]),
                              float(np.clip(ebv[b], *ebv_range)), float(score[b])))
    seeds.sort(key=lambda s: -s.score)
    out: list[Seed] = []
    for s in seeds:
        if all(abs(s.log_age - o.log_age) > 0.15 or abs(s.mh - o.mh) > 0.3 for o in out):
            out.append(s)
        if len(out) >= n_best:
            break
    return out
