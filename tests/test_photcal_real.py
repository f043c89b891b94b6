"""Calibrated B, V photometry of the real NGC 2420 night (CAHA 2.2 m / CAFOS) against SDSS DR18.

The three 60 s frames per band are calibrated (bias + one dome flat; the night has no darks),
aligned on one shared reference and stacked. The V stack is solved against
``sdss_dr18_ngc2420_gr.csv`` from the inventory's J2000 position; the B stack is on the same
pixel grid and takes the same WCS. Zero points and colour terms are fitted against SDSS g, r
transformed to B, V (Jester et al. 2005), with the extinction folded into the zero point (one
airmass).

Measured (issue 20): B ZP 22.833 +- 0.022, c +0.146 +- 0.035 (27 stars, RMS 0.036); V ZP
23.039 +- 0.019, c -0.005 +- 0.028 (36 stars, RMS 0.063). Unflagged stars with V < 17 (41 in
each band): B robust scatter 0.0385, median +0.002; V robust scatter 0.027, median +0.007.
Before, with the master bias's 2 % of holes, V scattered 0.065 and the tolerance had been
loosened to 0.09, blaming hot pixels.

Tolerances: >= 20 stars per band in the fit, |colour term| < 0.3, and for unflagged V < 17
stars |median offset| <= 0.03 mag and robust scatter <= 0.035 mag in V, <= 0.042 in B. B
cannot reach 0.035 against this reference: Jester et al.'s g, r -> B transformation alone
scatters 0.03 mag (their Table 1), and with our errors (median 0.026, zero point included)
and SDSS's (0.01) the expected scatter is 0.04; the measured one is 0.0385, with no trend in
radius, colour or magnitude.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from tgpcore.photcal.standards import cross_identify
from tgpcore.photcal.transforms import to_johnson
from tgpcore.photometry import flags as F

from _realnight import CAHA, SDSS, calibrated_night

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _robust(d: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(d - np.median(d))))


def test_ngc2420_calibrated_bv_against_sdss(tmp_path):
    if not CAHA.is_dir() or not SDSS.exists():
        pytest.skip(f"real data not found at {CAHA} / {SDSS}")
    night = calibrated_night(tmp_path)
    sol, sols, cal = night.solve, night.solutions, night.calibrated
    sdss = Table.read(SDSS, format="ascii.csv")
    jt, _ = to_johnson(sdss, "sdss_jester2005")
    jt["ra"], jt["dec"] = sdss["ra"], sdss["dec"]
    i, j, _ = cross_identify(cal, jt, 1.5)
    lines = [f"solve: {sol['n_matched']} SDSS stars, RMS {sol['rms_arcsec']:.3f}\""]
    for band in ("B", "V"):
        s = sols[band]
        m = np.ma.filled(np.ma.asarray(cal[band], float), np.nan)[i]
        fl = np.ma.filled(np.ma.asarray(cal[f"{band}_flags"]), F.BAD)[i]
        ok = np.isfinite(m) & (np.asarray(jt["V"])[j] < 17) & F.is_clean(fl)
        d = m[ok] - np.asarray(jt[band])[j][ok]
        lines.append(f"{band}: ZP {s.zp:.3f} +- {s.zp_err:.3f}, c {s.c:+.3f} +- {s.c_err:.3f} "
                     f"({s.n_used} stars, RMS {s.rms:.3f}); V < 17: {ok.sum()} stars, median "
                     f"{np.median(d):+.4f}, RMS {np.std(d):.4f}, robust {_robust(d):.4f}")
        assert s.n_used >= 20 and abs(s.c) < 0.3, lines[-1]
        limit = {"B": 0.042, "V": 0.035}[band]
        assert ok.sum() >= 20 and _robust(d) <= limit and abs(np.median(d)) <= 0.03, lines[-1]
    print("\n".join(lines))
