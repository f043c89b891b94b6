"""Photometric scales of the frames of one stack: the same stars' count rates compared.

Under clouds, or as a source sets, the same star gives fewer electrons per second in one frame
than in another. Stacked as they are, the frames disagree in every star, the clipping takes
the brightest frame's star pixels for outliers, and the stack's stars end up a mixture of
frames. So each frame is scaled to the most transparent frame of its stack before the
combination (what SWarp's FLXSCALE does), when the difference is measurable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: A frame is scaled only when its zero point differs from the reference's by more than this
#: (mag) and by more than ``SIGNIFICANCE`` times its error: below, the scale's own noise
#: would add more than it removes.
MIN_DIFFERENCE_MAG = 0.01
SIGNIFICANCE = 3.0


def relative_zero_points(star_flux: Sequence[Sequence[float] | None],
                         exptimes: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's zero point (mag) against the first frame with stars, star by star.

    Parameters
    ----------
    star_flux : sequence of sequences
        For each frame, the flux (e-) of the same reference stars, in the same order (NaN or
        None where not measured); None for a frame without measurements.
    exptimes : sequence of float
        Exposure times (s).

    Returns
    -------
    zp, err : ndarray
        2.5 log10 of the median count-rate ratio to the frame with most stars (NaN where
        fewer than 3 stars are shared), and its error from the ratios' robust scatter.
    """
    n = len(star_flux)
    zp, err = np.full(n, np.nan), np.full(n, np.nan)
    rates = []
    for f, t in zip(star_flux, exptimes, strict=True):
        if f is None or not t or t <= 0:
            rates.append(None)
            continue
        r = np.asarray([np.nan if v is None else v for v in f], float) / float(t)
        rates.append(np.where(r > 0, r, np.nan))
    lens = {len(r) for r in rates if r is not None}
    if not lens or len(lens) > 1:
        return zp, err
    ref = int(np.argmax([np.isfinite(r).sum() if r is not None else -1 for r in rates]))
    for i, r in enumerate(rates):
        if r is None:
            continue
        ok = np.isfinite(r) & np.isfinite(rates[ref])
        if ok.sum() < 3:
            continue
        d = 2.5 * np.log10(r[ok] / rates[ref][ok])
        zp[i] = float(np.median(d))
        err[i] = float(1.2533 * 1.4826 * np.median(np.abs(d - zp[i])) / np.sqrt(ok.sum()))
    return zp, err


def photometric_scales(star_flux: Sequence[Sequence[float] | None],
                       exptimes: Sequence[float]) -> tuple[np.ndarray, int | None, list[str]]:
    """Factors bringing each frame's count rates to the stack's most transparent frame.

    Returns
    -------
    scales : ndarray
        1 for the reference and for frames not measurably different (or not measured).
    reference : int or None
        The most transparent frame (None when nothing could be measured).
    notes : list of str
        One line per scaled frame.
    """
    zp, err = relative_zero_points(star_flux, exptimes)
    scales = np.ones(len(zp))
    good = np.isfinite(zp)
    if good.sum() < 2:
        return scales, None, []
    ref = int(np.flatnonzero(good)[np.argmax(zp[good])])
    notes = []
    for i in np.flatnonzero(good):
        diff = zp[ref] - zp[i]
        sig = float(np.hypot(err[i], err[ref]))
        if i != ref and diff > MIN_DIFFERENCE_MAG and diff > SIGNIFICANCE * sig:
            scales[i] = 10.0 ** (0.4 * diff)
            notes.append(f"frame {i}: {diff:.3f} +- {sig:.3f} mag less transparent, "
                         f"scaled by {scales[i]:.4f}")
    return scales, ref, notes
