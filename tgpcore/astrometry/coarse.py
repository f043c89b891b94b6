"""The coarse pose of an image on a reference catalogue: offset voting over trial rotations.

For a trial rotation (and parity) every pair (detection, reference star) gives an offset
``ref - R @ img``; the true pose gathers the offsets of the common stars in one place. The
offsets are histogrammed on bins of ``bin_px`` (the tolerance of the coarse match); the
densest 2x2-bin windows are candidates, and each is scored by the largest number of pairs
whose offsets agree within one bin -- and, when both lists have magnitudes, whose magnitude
differences (a zero point) agree within ``mag_window`` too. True pairs share one zero point,
chance pairs do not, so the magnitude score lowers the noise floor several-fold: that is what
finds a field whose reference lacks most of the image's bright stars (SDSS in a cluster core).

A candidate is grown into an affine map on all stars (:func:`refine`), and judged by how many
stars it matches within a tight tolerance. :func:`distinct_best` keeps the best candidate only
when it stands clear of every other distinct candidate (an empirical null: chance poses, each
refined the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from tgpcore.registration.vote import robust_affine_step


@dataclass
class Candidate:
    """A coarse pose ``ref ~ R(theta) @ diag(parity, 1) @ img + t`` and its scores.

    ``score`` is the significance that ranked it (magnitude-consistent when ``use_mag``).
    After :func:`refine`, ``a``/``b`` hold the affine map and ``n_tight`` the stars it
    matches within the tight tolerance (``i``/``j``: detection and reference indices).
    """

    theta: float
    parity: int
    t: np.ndarray
    score: float
    use_mag: bool
    a: np.ndarray | None = None
    b: np.ndarray | None = None
    n_tight: int = 0
    valid: bool = False
    i: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    j: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    def matrix(self) -> np.ndarray:
        """The 2x2 linear part of the coarse pose."""
        c, s = np.cos(self.theta), np.sin(self.theta)
        return np.array([[c, -s], [s, c]]) @ np.diag([float(self.parity), 1.0])


def _cluster_score(off: np.ndarray, dz: np.ndarray | None, half_bin: float,
                   half_mag: float) -> tuple[int, np.ndarray]:
    """The most pairs whose offsets agree within ``half_bin`` (and ``dz`` within ``half_mag``)
    of one of them; returns that count and the mean offset of the group."""
    count, t, _ = _cluster(off, dz, half_bin, half_mag)
    return count, t


def _cluster_score_mag(off: np.ndarray, dz: np.ndarray, half_bin: float, half_mag: float
                       ) -> tuple[int, np.ndarray, float]:
    """As :func:`_cluster_score` with the zero-point constraint; also the group's mean
    zero point."""
    return _cluster(off, dz, half_bin, half_mag)


def _cluster(off: np.ndarray, dz: np.ndarray | None, half_bin: float, half_mag: float
             ) -> tuple[int, np.ndarray, float]:
    n = len(off)
    if n == 0:
        return 0, np.zeros(2), float("nan")
    close = (np.abs(off[:, None, 0] - off[None, :, 0]) <= half_bin) & \
            (np.abs(off[:, None, 1] - off[None, :, 1]) <= half_bin)
    if dz is not None:
        close &= np.abs(dz[:, None] - dz[None, :]) <= half_mag
    counts = close.sum(axis=1)
    k = int(np.argmax(counts))
    z = float(dz[close[k]].mean()) if dz is not None else float("nan")
    return int(counts[k]), off[close[k]].mean(axis=0), z


def _level(h: np.ndarray, uniform_filter, block: int = 4) -> np.ndarray:
    """The local level of a 2-D histogram: means over blocks of ``block`` bins, smoothed over
    3x3 blocks (12 bins; a peak of one bin barely raises it), back on the bins."""
    nb = h.shape[0]
    m = -(-nb // block) * block
    pad = np.zeros((m, m), np.float32)
    pad[:nb, :nb] = h
    real = np.zeros((m, m), np.float32)
    real[:nb, :nb] = 1.0
    sums = pad.reshape(m // block, block, m // block, block).sum(axis=(1, 3))
    nums = real.reshape(m // block, block, m // block, block).sum(axis=(1, 3))
    blocks = uniform_filter(sums, 3, mode="nearest") / uniform_filter(nums, 3, mode="nearest")
    return np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)[:nb, :nb]


def vote(img: np.ndarray, ref: np.ndarray, thetas: np.ndarray, parity: int,
         radius_px: float, bin_px: float, img_mag: np.ndarray | None = None,
         ref_mag: np.ndarray | None = None, mag_window: float = 1.0, n_windows: int = 40,
         keep: int = 2) -> tuple[list[Candidate], list[Candidate]]:
    """Coarse candidates for trial rotations of one parity, scored by significance.

    The offsets ``ref - R img`` are histogrammed on bins of ``bin_px``. Chance offsets do not
    spread evenly: where the reference is dense and the detections crowd (a cluster) they
    pile up in a broad hump, and where the reference has a hole (SDSS in a cluster core) they
    are scarce. So every count is compared with the local level of the histogram (its mean
    over about 12 x 12 bins): a candidate's score is its excess over that level in units of
    the level's Poisson noise, not its raw count.

    Parameters
    ----------
    img : ndarray (n, 2)
        Detections relative to the image centre (px).
    ref : ndarray (m, 2)
        Reference stars on the tangent plane about the hint, in pixel units.
    thetas : ndarray
        Trial rotations (rad).
    parity : int
        1 (as is) or -1 (x mirrored).
    radius_px : float
        Largest offset considered (search radius plus half the image diagonal).
    bin_px : float
        Tolerance of the coarse match (histogram bin).
    img_mag, ref_mag : ndarray, optional
        Instrumental magnitudes of the detections and magnitudes of the reference stars
        (NaN unknown). With both, candidates are also scored counting only pairs that share
        a zero point (within ``mag_window``); the expected chance count is scaled by the
        fraction of all pairs near that zero point.
    mag_window : float
        Width of the zero-point window (mag).
    n_windows : int
        Most significant 2x2-bin windows examined per rotation.
    keep : int
        Candidates kept per rotation and score.

    Returns
    -------
    by_position, by_magnitude : list of Candidate
        Candidates with their positional and (with magnitudes) magnitude-consistent
        significance as ``score``.
    """
    from scipy.ndimage import uniform_filter

    nb = int(np.ceil(2 * radius_px / bin_px)) + 2
    u = ((ref[:, 0] + radius_px) / bin_px).astype(np.float32)
    v = ((ref[:, 1] + radius_px) / bin_px).astype(np.float32)
    dz = frac_grid = None
    if img_mag is not None and ref_mag is not None:
        dz = (np.asarray(ref_mag, float)[None, :]
              - np.asarray(img_mag, float)[:, None]).astype(np.float32)
        fin = dz[np.isfinite(dz)]
        if len(fin) < 2:
            dz = None
        else:
            # fraction of all pairs whose zero point falls within the window around z
            fin = np.sort(fin)
            frac_grid = (fin, len(fin))
    src = (np.asarray(img, float) * np.array([parity, 1.0])) / bin_px
    ref_s = ref.astype(np.float32)
    by_pos: list[Candidate] = []
    by_mag: list[Candidate] = []
    half = 0.5 * bin_px
    for th in thetas:
        c, s = np.cos(th), np.sin(th)
        rx = (c * src[:, 0] - s * src[:, 1]).astype(np.float32)
        ry = (s * src[:, 0] + c * src[:, 1]).astype(np.float32)
        kx = np.floor(u[None, :] - rx[:, None]).astype(np.int32)
        ky = np.floor(v[None, :] - ry[:, None]).astype(np.int32)
        ok = (kx >= 0) & (kx < nb) & (ky >= 0) & (ky < nb)
        key = kx.astype(np.int64) * nb + ky
        h = np.bincount(key[ok], minlength=nb * nb).reshape(nb, nb).astype(np.float32)
        level = _level(h, uniform_filter)
        win = h[:-1, :-1] + h[1:, :-1] + h[:-1, 1:] + h[1:, 1:]
        lev = level[:-1, :-1] + level[1:, :-1] + level[:-1, 1:] + level[1:, 1:]
        # windows with at least two pairs (argpartition degenerates on the many empty ones)
        top = np.flatnonzero(win.ravel() >= 2)
        if len(top) == 0:
            continue
        sig = ((win.ravel()[top] - lev.ravel()[top]) / np.sqrt(lev.ravel()[top] + 1.0))
        if len(top) > n_windows:
            top = top[np.argpartition(sig, -n_windows)[-n_windows:]]
        wx, wy = np.unravel_index(top, win.shape)
        cells = np.zeros((nb, nb), bool)
        for dx in (0, 1):
            for dy in (0, 1):
                cells[wx + dx, wy + dy] = True
        sel = ok & cells[np.clip(kx, 0, nb - 1), np.clip(ky, 0, nb - 1)]
        pi, pj = np.nonzero(sel)
        pkx, pky = kx[pi, pj], ky[pi, pj]
        off = ref_s[pj] - np.column_stack([rx[pi], ry[pi]]) * bin_px
        pdz = dz[pi, pj] if dz is not None else None
        cands_p: list[tuple[float, np.ndarray]] = []
        cands_m: list[tuple[float, np.ndarray]] = []
        for x0, y0 in zip(wx, wy, strict=True):
            m = (pkx >= x0) & (pkx <= x0 + 1) & (pky >= y0) & (pky <= y0 + 1)
            if m.sum() < 2:
                continue
            count, t = _cluster_score(off[m], None, half, 0.0)
            cx = int(np.clip(np.floor((t[0] + radius_px) / bin_px), 0, nb - 1))
            cy = int(np.clip(np.floor((t[1] + radius_px) / bin_px), 0, nb - 1))
            expect = float(level[cx, cy])  # chance pairs in one bin there
            cands_p.append(((count - expect) / np.sqrt(expect + 1.0), t))
            if pdz is not None:
                good = m & np.isfinite(pdz)
                if good.sum() >= 2:
                    count_m, t_m, z = _cluster_score_mag(off[good], pdz[good], half,
                                                         0.5 * mag_window)
                    fin, n_fin = frac_grid
                    f = (np.searchsorted(fin, z + 0.5 * mag_window)
                         - np.searchsorted(fin, z - 0.5 * mag_window)) / n_fin
                    e_m = expect * f
                    cands_m.append(((count_m - e_m) / np.sqrt(e_m + 1.0), t_m))
        for cands, out, use_mag in ((cands_p, by_pos, False), (cands_m, by_mag, True)):
            cands.sort(key=lambda ct: -ct[0])
            taken: list[np.ndarray] = []
            for score, t in cands:
                if any(np.max(np.abs(t - q)) <= bin_px for q in taken):
                    continue
                taken.append(t)
                out.append(Candidate(float(th), parity, t, float(score), use_mag))
                if len(taken) >= keep:
                    break
    return by_pos, by_mag


def match_tree(model_xy: np.ndarray, tree: cKDTree, tol: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j): ``tree``'s point j nearest to ``model_xy[i]`` within ``tol``, one per j."""
    if len(model_xy) == 0 or tree.n == 0:
        return np.zeros(0, int), np.zeros(0, int)
    d, j = tree.query(model_xy, distance_upper_bound=tol)
    i = np.nonzero(np.isfinite(d))[0]
    j = j[i]
    order = np.argsort(d[i], kind="stable")
    _, first = np.unique(j[order], return_index=True)
    keep = order[first]
    return i[keep], j[keep]


def refine(src: np.ndarray, ref: np.ndarray, tree: cKDTree, cand: Candidate, tol: float,
           tight: float, min_matches: int, n_iter: int = 6) -> Candidate:
    """Grow a coarse pose into an affine map on all stars, the tolerance shrinking.

    Each step shifts by the median residual, then fits an affine map to the pairs that agree
    (robust to the chance pairs of a wide tolerance). The result's ``n_tight`` counts the
    stars matched within ``tight`` (px).
    """
    a, b = cand.matrix(), np.asarray(cand.t, float)
    r = np.zeros(0)
    for _ in range(n_iter):
        i, j = match_tree(src @ a.T + b, tree, tol)
        if len(i) < max(min_matches, 3):
            break
        a, b, r = robust_affine_step(src[i], ref[j], a, b, min_matches)
        tol = max(0.5 * tol, 3.0 * float(np.sqrt(np.mean(r**2))) if len(r) else tol, tight)
    cand.a, cand.b = a, b
    cand.i, cand.j = match_tree(src @ a.T + b, tree, tight)
    cand.n_tight = int(len(cand.i))
    return cand


def same_as_any(cand: Candidate, refined: list[Candidate], corners: np.ndarray, tol: float
                ) -> bool:
    """True when a pose maps the image corners within ``tol`` of any refined candidate's."""
    done = [c for c in refined if c.a is not None]
    if not done:
        return False
    p = corners @ cand.a.T + cand.b
    a = np.stack([c.a for c in done])
    b = np.stack([c.b for c in done])
    q = np.einsum("kj,nij->nki", corners, a) + b[:, None, :]
    return bool(np.any(np.max(np.hypot(*(q - p[None]).transpose(2, 0, 1)), axis=1) <= tol))


def same_solution(c1: Candidate, c2: Candidate, corners: np.ndarray, tol: float) -> bool:
    """True when two refined candidates map the image corners within ``tol`` of each other."""
    if c1.a is None or c2.a is None:
        return False
    p1 = corners @ c1.a.T + c1.b
    p2 = corners @ c2.a.T + c2.b
    return bool(np.max(np.hypot(*(p1 - p2).T)) <= tol)


def _shared(c1: Candidate, c2: Candidate) -> bool:
    """True when two refined candidates share most of the smaller one's matched pairs (a
    partly converged copy of one solution is not a different solution)."""
    n = min(c1.n_tight, c2.n_tight)
    if n == 0:
        return False
    p1 = set(zip(c1.i.tolist(), c1.j.tolist(), strict=True))
    p2 = set(zip(c2.i.tolist(), c2.j.tolist(), strict=True))
    return len(p1 & p2) >= 0.5 * n


def distinct_best(cands: list[Candidate], corners: np.ndarray, tol: float
                  ) -> tuple[Candidate | None, int, int]:
    """The valid refined candidate matching most stars; the most matched by any other valid
    candidate that is a different solution (neither mapping the corners within ``tol`` of it
    nor sharing most of its pairs); and the same over every refined candidate, valid or not
    (0 when there is none)."""
    done = [c for c in cands if c.a is not None]
    valid = [c for c in done if c.valid]
    if not valid:
        return None, 0, max((c.n_tight for c in done), default=0)
    best = max(valid, key=lambda c: c.n_tight)
    others = [c for c in done
              if c is not best and not same_solution(c, best, corners, tol)
              and not _shared(c, best)]
    second = max((c.n_tight for c in others if c.valid), default=0)
    second_all = max((c.n_tight for c in others), default=0)
    return best, second, second_all
