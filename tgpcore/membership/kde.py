"""Find the cluster in proper-motion space: a KDE of the inner cone minus the scaled outer cone.

A cluster is concentrated both on the sky and in proper motion; the field is (locally) uniform
on the sky whatever its proper-motion distribution. So the proper-motion density of stars
inside an inner radius, minus that of the outer annulus scaled by the area ratio, is the
cluster's alone. This is TGP2020's KDE member finder made robust to a field whose own
proper-motion peak is sharp: its peak is the proper-motion centroid, its significance says
whether there is a cluster at all, and a 1-D KDE of the same difference in parallax, for stars
near that proper motion, gives the parallax centroid.

Significance: for a proper-motion disc of radius h about a candidate centroid, with ``n_in``
inner and ``n_out`` outer stars and area ratio s, the field predicts ``e = s n_out`` inner stars;
``S = (n_in - e) / sqrt(n_in + s^2 n_out + 1)`` (observed-count variance, conservative for the
few-star apertures of an empty cone). The candidate (inner radius, h, centroid) with the
largest S wins; a cone whose best S is below ``min_significance`` has no significant overdensity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import cKDTree

#: Inner radii tried, as fractions of the cone radius.
INNER_FRACTIONS: tuple[float, ...] = (0.15, 0.25, 0.35, 0.5)
#: Proper-motion aperture radii tried (mas/yr).
PM_APERTURES: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8)


class NoOverdensityError(RuntimeError):
    """The cone holds no significant proper-motion overdensity: no cluster, no centroid."""


@dataclass(frozen=True)
class KDEDetection:
    """The KDE estimate of the cluster centroid and how significant it is.

    Attributes
    ----------
    pmra_masyr, pmdec_masyr, parallax_mas : float
        Peak of the inner-minus-outer KDE (proper motion: 2-D; parallax: 1-D).
    bandwidth_masyr : float
        Proper-motion kernel (= the aperture that maximised the significance).
    parallax_bandwidth_mas : float
        Parallax kernel.
    inner_radius_arcmin : float
        Inner radius that maximised the significance.
    significance : float
        S of the best aperture (Poisson sigmas).
    n_excess : float
        Inner stars in the aperture above the field's prediction.
    method : str
        Description for the output.
    """

    pmra_masyr: float
    pmdec_masyr: float
    parallax_mas: float
    bandwidth_masyr: float
    parallax_bandwidth_mas: float
    inner_radius_arcmin: float
    significance: float
    n_excess: float
    method: str = ("KDE of inner-cone minus area-scaled outer-annulus stars in (pmra, pmdec); "
                   "1-D KDE difference in parallax near that proper motion")

    def to_dict(self) -> dict:
        """Plain data."""
        return asdict(self)


def _significance(n_in: np.ndarray, n_out: np.ndarray, s: float) -> np.ndarray:
    return (n_in - s * n_out) / np.sqrt(n_in + s * s * n_out + 1.0)


def _kernel_sum(points: np.ndarray, grid: np.ndarray, h: float) -> np.ndarray:
    """``sum_j exp(-|grid_i - points_j|^2 / (2 h^2))`` at every grid position: a Gaussian
    kernel density without its normalisation (so that an inner and a scaled outer sample can
    be subtracted).

    Written out, in blocks of the grid: the grids here are at most a few thousand nodes and the
    points a few thousand stars, milliseconds of work. scikit-learn's ``KernelDensity`` gives
    the same sums (``tests/test_membership_kde.py`` keeps it as the oracle), but importing
    scikit-learn took 1.2 s of the 8.5 s of ``tgp members`` on the M67 cone (it brings pandas
    and scipy.stats), more than all the sums of a run.
    """
    points, grid = np.asarray(points, float), np.asarray(grid, float)
    if points.ndim == 1:                       # 1-D values: one column
        points, grid = points[:, None], grid[:, None]
    out = np.zeros(len(grid))
    if not len(points):
        return out
    step = max(1, (1 << 21) // len(points))    # at most ~2 M distances (16 MB) at a time
    for i in range(0, len(grid), step):
        d2 = ((grid[i:i + step, None, :] - points[None, :, :]) ** 2).sum(-1)
        out[i:i + step] = np.exp(d2 * (-0.5 / (h * h))).sum(1)
    return out


def detect_cluster(pm: np.ndarray, parallax: np.ndarray, parallax_error: np.ndarray,
                   r_arcmin: np.ndarray, radius_arcmin: float, *,
                   min_significance: float = 5.0, min_excess: float = 10.0,
                   inner_fractions: tuple[float, ...] = INNER_FRACTIONS,
                   apertures_masyr: tuple[float, ...] = PM_APERTURES) -> KDEDetection:
    """Locate the cluster's centroid in proper motion and parallax, or say there is none.

    Parameters
    ----------
    pm : ndarray, shape (N, 2)
        (pmra, pmdec) in mas/yr of the quality-selected stars.
    parallax, parallax_error : ndarray
        Parallaxes and their errors (mas).
    r_arcmin : ndarray
        Distance of each star from the cone centre (arcmin).
    radius_arcmin : float
        Cone radius (arcmin); stars beyond it are ignored.
    min_significance : float
        Smallest significance S (see module docstring) that counts as a cluster.
    min_excess : float
        Smallest number of excess inner stars that counts as a cluster.
    inner_fractions, apertures_masyr : tuple of float
        Inner radii (fractions of the cone radius) and proper-motion apertures tried.

    Returns
    -------
    KDEDetection

    Raises
    ------
    NoOverdensityError
        If no candidate reaches both thresholds ("no significant overdensity").
    """
    inside = r_arcmin <= radius_arcmin
    pm, parallax, parallax_error, r = (pm[inside], parallax[inside], parallax_error[inside],
                                       r_arcmin[inside])
    best: tuple[float, float, float, np.ndarray, float, float] | None = None
    for frac in inner_fractions:
        r_in = frac * radius_arcmin
        inner = r < r_in
        if inner.sum() < 10 or (~inner).sum() < 10:
            continue
        s = r_in**2 / (radius_arcmin**2 - r_in**2)
        t_in, t_out = cKDTree(pm[inner]), cKDTree(pm[~inner])
        for h in apertures_masyr:
            n_in = t_in.query_ball_point(pm[inner], h, return_length=True).astype(float)
            n_out = t_out.query_ball_point(pm[inner], h, return_length=True).astype(float)
            sig = _significance(n_in, n_out, s)
            k = int(np.argmax(sig))
            if best is None or sig[k] > best[0]:
                best = (float(sig[k]), r_in, h, pm[inner][k], float(n_in[k] - s * n_out[k]), s)
    if best is None or best[0] < min_significance or best[4] < min_excess:
        got = ("too few stars" if best is None else
               f"best S = {best[0]:.1f} with {best[4]:.0f} excess stars")
        raise NoOverdensityError(
            f"no significant overdensity in proper motion: {got} (need S >= "
            f"{min_significance:g} and >= {min_excess:g} excess stars); no cluster centroid")
    sig, r_in, h, seed, n_excess, s = best
    inner = r < r_in
    # refine: peak of the inner-minus-scaled-outer KDE on a fine grid about the seed
    g1 = np.linspace(-2.0 * h, 2.0 * h, 41)
    grid = np.stack(np.meshgrid(seed[0] + g1, seed[1] + g1), -1).reshape(-1, 2)
    near = np.abs(pm - seed).max(1) < 6.0 * h
    dens = _kernel_sum(pm[inner & near], grid, h) - s * _kernel_sum(pm[~inner & near], grid, h)
    c_pm = grid[int(np.argmax(dens))]
    # parallax: 1-D KDE difference for stars within 1.5 h of the proper-motion peak
    sel = np.hypot(*(pm - c_pm).T) < 1.5 * h
    plx_in, plx_out = parallax[sel & inner], parallax[sel & ~inner]
    hp = float(max(0.02, np.median(parallax_error[sel & inner]) if (sel & inner).any() else 0.1))
    lo, hi = np.percentile(parallax[sel], [1, 99]) if sel.sum() > 2 else (-1.0, 5.0)
    pgrid = np.linspace(lo - hp, hi + hp, 800)
    pdens = _kernel_sum(plx_in, pgrid, hp) - s * _kernel_sum(plx_out, pgrid, hp)
    return KDEDetection(pmra_masyr=float(c_pm[0]), pmdec_masyr=float(c_pm[1]),
                        parallax_mas=float(pgrid[int(np.argmax(pdens))]), bandwidth_masyr=h,
                        parallax_bandwidth_mas=hp, inner_radius_arcmin=r_in,
                        significance=sig, n_excess=n_excess)
