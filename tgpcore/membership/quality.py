"""Astrometric quality cuts for the membership fit: RUWE and parallax signal-to-noise."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tgpcore.catalogs.columns import column_values
from tgpcore.membership.sample import AstrometricSample


@dataclass(frozen=True)
class QualityCuts:
    """Which stars enter the membership fit.

    Attributes
    ----------
    ruwe_max : float or None
        Keep RUWE < ruwe_max (Lindegren et al. 2018's 1.4 by default); ``None``: no cut.
        Tables without a ``ruwe`` column are not cut (and the summary says so).
    parallax_over_error_min : float or None
        Keep parallax / parallax_error >= this; ``None``: no cut.
    g_max : float or None
        Keep G <= g_max; ``None``: no cut.
    """

    ruwe_max: float | None = 1.4
    parallax_over_error_min: float | None = 1.0
    g_max: float | None = None

    def to_dict(self) -> dict:
        """Plain data."""
        return asdict(self)


def quality_mask(sample: AstrometricSample, cuts: QualityCuts) -> tuple[np.ndarray, dict]:
    """Stars passing ``cuts`` (among those with astrometry), and counts of what each cut removed.

    Returns
    -------
    mask : ndarray of bool
        True for stars that enter the fit.
    report : dict
        ``{"no_astrometry": n, "ruwe": n, "parallax_over_error": n, "g_max": n,
        "ruwe_column": bool}`` (each cut counted on the stars left by the previous ones).
    """
    ok = sample.has_astrometry.copy()
    report: dict = {"no_astrometry": int((~ok).sum())}
    has_ruwe = "ruwe" in sample.table.colnames
    report["ruwe_column"] = has_ruwe
    if cuts.ruwe_max is not None and has_ruwe:
        ruwe = column_values(sample.table, "ruwe")
        keep = np.isfinite(ruwe) & (ruwe < cuts.ruwe_max)
        report["ruwe"] = int((ok & ~keep).sum())
        ok &= keep
    else:
        report["ruwe"] = 0
    if cuts.parallax_over_error_min is not None:
        snr = sample.x[:, 2] / np.sqrt(sample.cov[:, 2, 2])
        keep = snr >= cuts.parallax_over_error_min
        report["parallax_over_error"] = int((ok & ~keep).sum())
        ok &= keep
    else:
        report["parallax_over_error"] = 0
    if cuts.g_max is not None:
        keep = np.isfinite(sample.g) & (sample.g <= cuts.g_max)
        report["g_max"] = int((ok & ~keep).sum())
        ok &= keep
    else:
        report["g_max"] = 0
    return ok, report
