"""Apply calibration solutions to an instrumental multi-band catalogue."""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.table import MaskedColumn, Table

from tgpcore.photcal.fit import CalibrationSolution
from tgpcore.photcal.standards import COLOUR_OF
from tgpcore.photometry import flags as F


def _filled(t: Table, name: str) -> np.ndarray:
    c = t[name]
    a = np.asarray(c.filled(np.nan) if hasattr(c, "filled") else c, float)
    return a


def calibrate_catalogue(inst: Table, solutions: dict[str, CalibrationSolution],
                        airmass: dict[str, float] | None = None, n_iter: int = 10) -> Table:
    """Standard magnitudes from instrumental ones, with the calibration's uncertainty folded in.

    Solves ``M_F = m_F + ZP_F - k_F X_F + c_F colour_F(M)`` for all bands at once by fixed-point
    iteration (the colour terms are small), starting from colours without colour terms.

    Parameters
    ----------
    inst : Table
        Multi-band instrumental catalogue (``<F>_inst``, ``<F>_inst_err``, ``<F>_flags`` and
        optionally ``<F>_airmass`` per star), as made by
        :func:`tgpcore.photometry.merge_bands`.
    solutions : dict
        Filter -> :class:`CalibrationSolution`.
    airmass : dict, optional
        Filter -> airmass for catalogues without an ``<F>_airmass`` column.
    n_iter : int
        Iterations.

    Returns
    -------
    Table
        The input columns plus ``<F>`` and ``<F>_err`` (photometric, calibration and colour
        errors in quadrature); masked where a band is missing or has no solution. A star
        lacking a band needed by its colour (or saturated in it) uses the median colour of
        the calibrated stars,
        with the colour's spread as its error, and gets the ``COLOUR_ASSUMED`` flag.
    """
    out = inst.copy()
    bands = [b for b in solutions if f"{b}_inst" in inst.colnames]
    n = len(inst)
    m_inst = {b: _filled(inst, f"{b}_inst") for b in bands}
    e_inst = {b: _filled(inst, f"{b}_inst_err") for b in bands}
    X = {}
    for b in bands:
        if f"{b}_airmass" in inst.colnames:
            X[b] = _filled(inst, f"{b}_airmass")
        else:
            X[b] = np.full(n, float((airmass or {}).get(b, np.nan)))
        if not np.isfinite(X[b]).any() and solutions[b].k != 0.0:
            raise ValueError(f"no airmass for band {b}")
        X[b] = np.where(np.isfinite(X[b]), X[b], 0.0 if solutions[b].k == 0.0 else np.nan)
    M = {b: m_inst[b] + solutions[b].zp - solutions[b].k * X[b] for b in bands}
    # a saturated magnitude is only a bright limit: it gives no colour
    saturated = {b: (np.asarray(out[f"{b}_flags"].filled(0) if hasattr(out[f"{b}_flags"], "filled")
                                else out[f"{b}_flags"], np.int64) & F.SATURATED) != 0
                 if f"{b}_flags" in out.colnames else np.zeros(n, bool) for b in bands}

    def colour_of(b: str) -> tuple[np.ndarray, np.ndarray]:
        a, c = COLOUR_OF.get(b, (b, b))
        if a in M and c in M:
            return M[a] - M[c], np.isfinite(M[a] - M[c]) & ~saturated[a] & ~saturated[c]
        return np.full(n, np.nan), np.zeros(n, bool)

    typical: dict[str, tuple[float, float]] = {}
    for _ in range(n_iter):
        new = {}
        for b in bands:
            col, have = colour_of(b)
            if have.sum() >= 3:
                med = float(np.nanmedian(col[have]))
                spread = float(1.4826 * np.nanmedian(np.abs(col[have] - med)))
            else:
                med, spread = 0.0, 0.5
            typical[b] = (med, spread)
            col = np.where(have, col, med)
            new[b] = m_inst[b] + solutions[b].offset(X[b], col)
        M = new
    for b in bands:
        sol = solutions[b]
        col, have = colour_of(b)
        med, spread = typical[b]
        col_used = np.where(have, col, med)
        a, c = COLOUR_OF.get(b, (b, b))
        # error of the colour (from the photometric errors of its two bands)
        ecol = np.where(have, np.hypot(e_inst.get(a, np.zeros(n)), e_inst.get(c, np.zeros(n))),
                        spread)
        err = np.sqrt(e_inst[b] ** 2 + sol.offset_err(X[b], col_used) ** 2
                      + (sol.c * ecol) ** 2)
        good = np.isfinite(M[b])
        out[b] = MaskedColumn(np.where(good, M[b], np.nan), mask=~good, unit=u.mag)
        out[f"{b}_err"] = MaskedColumn(np.where(good, err, np.nan), mask=~good, unit=u.mag)
        if f"{b}_flags" in out.colnames:
            fl = np.asarray(out[f"{b}_flags"].filled(0) if hasattr(out[f"{b}_flags"], "filled")
                            else out[f"{b}_flags"]).copy()
            fl[good & ~have] |= F.COLOUR_ASSUMED
            out[f"{b}_flags"] = MaskedColumn(fl, mask=~good)
    out.meta["calibration"] = {b: solutions[b].to_dict() for b in bands}
    for b in bands:
        out.meta["calibration"][b].pop("extra", None)
    return out
