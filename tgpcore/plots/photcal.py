"""QC figure of the photometric calibration: fit residuals against airmass and colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from tgpcore.plots.style import new_figure, save_figure


def residuals_figure(measurements: Table, solutions: dict, path: str | Path,
                     title: str = "") -> Path:
    """Residuals ``(m_std - m_inst) - (ZP - k X + c colour)`` per filter, against airmass
    (left) and colour (right); rejected measurements as crosses.

    Parameters
    ----------
    measurements : Table
        ``filter``, ``airmass``, ``colour``, ``m_std``, ``m_inst``, ``m_inst_err`` (standard
        stars) -- or, for the reference-catalogue mode, ``band``, ``colour``, ``residual``
        and ``used``.
    solutions : dict
        Filter -> :class:`~tgpcore.photcal.fit.CalibrationSolution`.
    path : path-like
        PNG file.
    title : str
        Figure title.
    """
    filters = list(solutions)
    fig, axes = new_figure(max(len(filters), 1), 2, size=(11.0, 3.4 * max(len(filters), 1)),
                           squeeze=False)
    reference_mode = "band" in measurements.colnames
    for row, f in enumerate(filters):
        sol = solutions[f]
        ax_x, ax_c = axes[row]
        if reference_mode:
            # one airmass per stack (extinction folded into the zero point): the residuals
            # against the reference magnitude say more
            t = measurements[measurements["band"] == f]
            res = np.asarray(t["residual"], float)
            X = (np.asarray(t["m_ref"], float) if "m_ref" in t.colnames
                 else np.zeros(len(t)))
            used = np.asarray(t["used"], bool)
            err = np.zeros(len(t))
        else:
            t = measurements[measurements["filter"] == f] if len(measurements) else measurements
            X = np.asarray(t["airmass"], float)
            res = (np.asarray(t["m_std"], float) - np.asarray(t["m_inst"], float)
                   - sol.offset(X, np.asarray(t["colour"], float)))
            used = np.abs(res) <= max(4 * sol.rms, 1e-3) if sol.rms > 0 else np.ones(len(t), bool)
            if "used" in sol.extra and len(sol.extra["used"]) == len(t):
                used = np.asarray(sol.extra["used"], bool)
            err = np.asarray(t["m_inst_err"], float)
        col = np.asarray(t["colour"], float) if len(t) else np.zeros(0)
        first = "reference magnitude (mag)" if reference_mode else "airmass"
        for ax, xv, lab in ((ax_x, X, first), (ax_c, col, sol.colour or "colour")):
            ax.errorbar(xv[used], res[used], yerr=err[used] if len(err) else None, fmt="o",
                        ms=3, lw=0.8)
            if (~used).any():
                ax.plot(xv[~used], res[~used], "x", color="tab:red", label="rejected")
                ax.legend(fontsize=7)
            ax.axhline(0.0, color="k", lw=0.8)
            ax.set_xlabel(lab)
            ax.set_ylabel(f"{f} residual (mag)")
        ax_x.set_title(f"{f}: ZP {sol.zp:.3f} ± {sol.zp_err:.3f}, k {sol.k:.3f} ± "
                       f"{sol.k_err:.3f}", fontsize=9, loc="left")
        ax_c.set_title(f"c {sol.c:.3f} ± {sol.c_err:.3f}, rms {sol.rms:.3f} mag, "
                       f"{sol.n_used} stars", fontsize=9, loc="left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
