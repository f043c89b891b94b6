"""Point-pattern matching by offset voting: robust when two star lists differ in depth.

For each trial rotation (and parity) the offsets between every point of one list and every
point of the other are histogrammed; the true pose gives a peak. Used for frame-to-frame
alignment (small rotations) and for matching detections to a reference catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass
class Pose:
    """A coarse pose: ``ref ~ R(theta) @ diag(parity, 1) @ src + t``, with its vote count."""

    theta: float
    parity: int
    t: np.ndarray
    votes: int

    def matrix(self) -> np.ndarray:
        """The 2x2 linear part."""
        c, s = np.cos(self.theta), np.sin(self.theta)
        return np.array([[c, -s], [s, c]]) @ np.diag([float(self.parity), 1.0])


def vote_poses(src: np.ndarray, ref: np.ndarray, radius_px: float, bin_px: float,
               thetas: np.ndarray, parities: tuple[int, ...] = (1,), keep: int = 5,
               src_mag: np.ndarray | None = None, ref_mag: np.ndarray | None = None,
               mag_bin: float = 1.0, per_trial: int = 1) -> list[Pose]:
    """The ``keep`` best poses (at most one per trial rotation and parity), most votes first.

    Parameters
    ----------
    src, ref : ndarray (n, 2)
        The two point lists (same units).
    radius_px : float
        Largest translation considered.
    bin_px : float
        Histogram bin (the tolerance of the coarse match).
    thetas : ndarray
        Trial rotations (radians).
    parities : tuple of int
        1 (as is) and/or -1 (x mirrored).
    src_mag, ref_mag : ndarray, optional
        Magnitudes (any zero point). When given, the vote is also binned in the magnitude
        offset ``ref_mag - src_mag``: true pairs share one offset, chance pairs do not, which
        lowers the noise floor several-fold.
    mag_bin : float
        Bin of the magnitude offset.
    per_trial : int
        Peaks kept per trial rotation (more than one when few rotations are tried, so that a
        true peak beside a chance one in the same trial is not lost).
    """
    nb = int(np.ceil(2 * radius_px / bin_px)) + 3
    dz = nz = None
    if src_mag is not None and ref_mag is not None:
        dz = (np.asarray(ref_mag, float)[None, :] - np.asarray(src_mag, float)[:, None]).ravel()
        good = np.isfinite(dz)
        lo = np.min(dz[good]) if good.any() else 0.0
        dz = np.where(good, dz - lo, -1e9)
        nz = int(np.ceil((np.max(dz[good]) if good.any() else 0.0) / mag_bin)) + 3
    poses: list[Pose] = []
    for parity in parities:
        xy = src * np.array([parity, 1.0])
        for th in thetas:
            c, s = np.cos(th), np.sin(th)
            rot = xy @ np.array([[c, s], [-s, c]])
            off = (ref[None, :, :] - rot[:, None, :]).reshape(-1, 2)
            q = np.floor((off + radius_px) / bin_px).astype(np.int64)
            ok = (q >= 0).all(1) & (q < nb - 1).all(1)
            if dz is not None:
                ok &= dz >= 0
            if not ok.any():
                continue
            off = off[ok]
            found: dict[tuple[int, int], Pose] = {}
            for sx in (0.0, 0.5):  # half-bin shifted grids: a peak on a bin edge still shows
                qq = np.floor((off + radius_px + sx * bin_px) / bin_px).astype(np.int64)
                key = qq[:, 0] * nb + qq[:, 1]
                if dz is not None:
                    key = key * nz + np.floor(dz[ok] / mag_bin + sx).astype(np.int64)
                    uniq, counts = np.unique(key, return_counts=True)
                    cells = uniq // nz
                else:
                    counts = np.bincount(key)
                    cells = np.arange(len(counts))
                if per_trial == 1 or len(counts) <= per_trial:
                    top = [int(np.argmax(counts))]
                else:
                    top = np.argpartition(counts, -per_trial)[-per_trial:]
                for k in top:
                    cell = int(cells[k])
                    t = (np.array([cell // nb, cell % nb]) + 0.5 - sx) * bin_px - radius_px
                    ck = (int(round(t[0] / bin_px)), int(round(t[1] / bin_px)))
                    if ck not in found or counts[k] > found[ck].votes:
                        found[ck] = Pose(float(th), parity, t, int(counts[k]))
            poses.extend(found.values())
            if len(poses) > 4 * keep:
                poses = sorted(poses, key=lambda p: -p.votes)[:keep]
    return sorted(poses, key=lambda p: -p.votes)[:keep]


def match_nearest(model_xy: np.ndarray, ref: np.ndarray, tol: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) with ``ref[j]`` the nearest to ``model_xy[i]`` within ``tol``, one per j."""
    if len(model_xy) == 0 or len(ref) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    d, j = cKDTree(ref).query(model_xy, distance_upper_bound=tol)
    i = np.nonzero(np.isfinite(d))[0]
    j = j[i]
    order = np.argsort(d[i])
    _, first = np.unique(j[order], return_index=True)
    keep = order[first]
    return i[keep], j[keep]


def robust_affine_step(src: np.ndarray, ref: np.ndarray, a: np.ndarray, b: np.ndarray,
                       min_matches: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One robust step of an affine fit ``ref ~ src @ a.T + b`` on matched pairs.

    A shift from the median residual, then (when at least ``max(min_matches, 3)`` pairs agree
    within ``max(2.5 * median, 1)``) a least-squares affine fit on the pairs that agree.

    Returns
    -------
    a, b, r
        The new model and the residuals (px) of the pairs it was judged on.
    """
    resid = ref - (src @ a.T + b)
    b = b + np.median(resid, axis=0)
    r = np.hypot(*(ref - (src @ a.T + b)).T)
    keep = r <= max(2.5 * np.median(r), 1.0)
    if keep.sum() >= max(min_matches, 3):
        design = np.column_stack([src[keep], np.ones(int(keep.sum()))])
        coef, *_ = np.linalg.lstsq(design, ref[keep], rcond=None)
        a, b = coef[:2].T, coef[2]
        r = np.hypot(*(src[keep] @ a.T + b - ref[keep]).T)
    return a, b, r


def refine_affine(src: np.ndarray, ref: np.ndarray, pose: Pose, tol: float, min_matches: int,
                  n_iter: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grow a pose into an affine fit on all points, tolerance shrinking.

    Returns
    -------
    i, j, a, b
        Matched indices and the affine model ``ref ~ src @ a.T + b``.
    """
    a, b = pose.matrix(), np.asarray(pose.t, float)
    i = j = np.zeros(0, int)
    for _ in range(n_iter):
        i, j = match_nearest(src @ a.T + b, ref, tol)
        if len(i) < max(min_matches, 3):
            return i, j, a, b
        a, b, r = robust_affine_step(src[i], ref[j], a, b, min_matches)
        tol = max(0.5 * tol, 3.0 * float(np.sqrt(np.mean(r**2))), 1.0)
    i, j = match_nearest(src @ a.T + b, ref, tol)
    return i, j, a, b
