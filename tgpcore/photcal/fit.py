"""Weighted least squares of the atmospheric calibration

    m_std - m_inst = ZP - k X + c colour

per filter and night, with iterative outlier rejection, uncertainties and covariance."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


class TooFewStandardsError(ValueError):
    """Not enough standard-star measurements to fit a filter's calibration."""


@dataclass
class CalibrationSolution:
    """One filter's calibration.

    ``params`` names the fitted terms (subset of ``zp``, ``k``, ``c``); ``values`` and ``cov``
    are in that order. Terms not fitted keep ``fixed`` values (with zero variance).
    ``method`` says how the solution was obtained (standards or reference catalogue and
    the transformation used).
    """

    filter: str
    colour: str
    zp: float
    k: float
    c: float
    zp_err: float
    k_err: float
    c_err: float
    cov: list[list[float]]  # 3x3 over (zp, k, c)
    rms: float
    chi2_red: float
    n_used: int
    n_rejected: int
    method: str
    airmass_range: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibrationSolution:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        if d.get("airmass_range") is not None:
            d["airmass_range"] = tuple(d["airmass_range"])
        return cls(**d)

    def offset(self, airmass: np.ndarray, colour: np.ndarray) -> np.ndarray:
        """``ZP - k X + c colour``: what to add to an instrumental magnitude."""
        return self.zp - self.k * np.asarray(airmass, float) + self.c * np.asarray(colour, float)

    def offset_err(self, airmass: np.ndarray, colour: np.ndarray) -> np.ndarray:
        """Standard error of :meth:`offset` from the covariance of (ZP, k, c)."""
        X = np.broadcast_to(np.asarray(airmass, float), np.shape(colour))
        J = np.stack([np.ones_like(X), -X, np.asarray(colour, float)], axis=-1)
        cov = np.asarray(self.cov, float)
        return np.sqrt(np.maximum(np.einsum("...i,ij,...j->...", J, cov, J), 0.0))


def fit_calibration(filt: str, m_std: np.ndarray, m_inst: np.ndarray, airmass: np.ndarray,
                    colour: np.ndarray, err: np.ndarray, *, colour_name: str = "",
                    fit_k: bool = True, fit_c: bool = True, k_fixed: float = 0.0,
                    c_fixed: float = 0.0, clip_sigma: float = 4.0, max_iters: int = 10,
                    min_stars: int = 5, method: str = "standard stars",
                    group: np.ndarray | None = None, group_err: np.ndarray | None = None
                    ) -> CalibrationSolution:
    """Fit one filter's zero point, extinction coefficient and colour term.

    Parameters
    ----------
    filt : str
        The filter.
    m_std, m_inst, airmass, colour, err : array
        Per measurement: standard magnitude, instrumental magnitude (-2.5 log10 e-/s),
        airmass, standard colour, and the error of ``m_std - m_inst`` (photometric error and
        the standard's catalogue error in quadrature).
    colour_name : str
        E.g. ``'B-V'``.
    fit_k, fit_c : bool
        Fit the extinction and colour terms, or hold them at ``k_fixed``/``c_fixed``
        (``fit_k=False`` when the airmass range is too small).
    clip_sigma : float
        Iteratively reject measurements whose residual exceeds this many times their error
        scaled by the fit's ``sqrt(chi2_red)`` (when > 1).
    max_iters : int
        Rejection iterations.
    min_stars : int
        Fewest measurements kept (and at least one more than the fitted terms).
    method : str
        Recorded in the solution.
    group, group_err : array, optional
        Per measurement: a label of the frame it was measured on, and an error common to all
        the measurements of that frame (its aperture correction's). With them the fit is
        generalised least squares: the measurements of one frame share that error, so a
        frame's stars do not count as independent evidence against it, and the errors of ZP
        and k include the frame-to-frame scatter.

    Returns
    -------
    CalibrationSolution
        Parameter errors are from the weighted least-squares covariance scaled by
        ``max(chi2_red, 1)``.

    Raises
    ------
    TooFewStandardsError
        When fewer than ``min_stars`` good measurements are available (or remain).
    """
    y = np.asarray(m_std, float) - np.asarray(m_inst, float)
    X = np.asarray(airmass, float)
    col = np.asarray(colour, float)
    e = np.asarray(err, float)
    ok = np.isfinite(y) & np.isfinite(X) & np.isfinite(col) & np.isfinite(e) & (e > 0)
    names = ["zp"] + (["k"] if fit_k else []) + (["c"] if fit_c else [])
    need = max(min_stars, len(names) + 1)
    if ok.sum() < need:
        raise TooFewStandardsError(
            f"{filt}: {int(ok.sum())} standard-star measurements, need at least {need}")
    cols = [np.ones_like(y)]
    if fit_k:
        cols.append(-X)
    if fit_c:
        cols.append(col)
    A = np.column_stack(cols)
    yy = y - (0.0 if fit_k else -k_fixed * X) - (0.0 if fit_c else c_fixed * col)
    use = ok.copy()
    n_iter = 0
    if group is not None and group_err is not None:
        g = np.asarray(group).astype(str)
        ge = np.nan_to_num(np.asarray(group_err, float), nan=0.0)
        same = g[:, None] == g[None, :]
    else:
        g, ge, same = None, np.zeros_like(e), None
    e_tot = np.hypot(e, ge)
    while True:
        n_iter += 1
        if same is None:
            W = np.diag(1.0 / e[use] ** 2)
        else:
            C = np.diag(e[use] ** 2) + same[np.ix_(use, use)] * np.outer(ge[use], ge[use])
            W = np.linalg.inv(C)
        Aw = W @ A[use]
        N = A[use].T @ Aw
        try:
            Ninv = np.linalg.inv(N)
        except np.linalg.LinAlgError as exc:
            raise TooFewStandardsError(f"{filt}: degenerate fit ({exc}); too little spread "
                                       "in airmass or colour") from None
        p = Ninv @ (Aw.T @ yy[use])
        r = yy - A @ p
        dof = max(int(use.sum()) - len(p), 1)
        chi2_red = float(r[use] @ W @ r[use] / dof)
        scale = np.sqrt(max(chi2_red, 1.0))
        bad = ok & (np.abs(r) > clip_sigma * e_tot * scale)
        new_use = ok & ~bad
        if np.array_equal(new_use, use) or n_iter >= max_iters:
            break
        if new_use.sum() < need:
            raise TooFewStandardsError(
                f"{filt}: only {int(new_use.sum())} standards left after rejecting outliers")
        use = new_use
    cov_p = Ninv * max(chi2_red, 1.0)
    full = {"zp": 0, "k": 1, "c": 2}
    cov = np.zeros((3, 3))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            cov[full[a], full[b]] = cov_p[i, j]
    val = dict(zip(names, p, strict=True))
    zp = float(val["zp"])
    k = float(val.get("k", k_fixed))
    c = float(val.get("c", c_fixed))
    resid = (y - (zp - k * X + c * col))
    rms = float(np.sqrt(np.mean(resid[use] ** 2)))
    return CalibrationSolution(
        filter=filt, colour=colour_name, zp=zp, k=k, c=c, zp_err=float(np.sqrt(cov[0, 0])),
        k_err=float(np.sqrt(cov[1, 1])), c_err=float(np.sqrt(cov[2, 2])),
        cov=cov.tolist(), rms=rms, chi2_red=chi2_red, n_used=int(use.sum()),
        n_rejected=int(ok.sum() - use.sum()),
        method=method + ("" if fit_k else f"; k fixed at {k_fixed:g}")
        + ("" if fit_c else f"; c fixed at {c_fixed:g}"),
        airmass_range=(float(X[use].min()), float(X[use].max())),
        extra={"used": use.tolist(), "residual": resid.tolist()})
