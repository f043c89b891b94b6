"""Per-star photometry flags (bits of the ``flags`` column of a photometry catalogue)."""

from __future__ import annotations

import numpy as np

SATURATED = 1
"""The star's core (within 1 FWHM) has masked pixels: saturated in every frame, or dead."""
NEAR_MASK = 2
"""Masked pixels inside the measuring aperture or covering much of the background annulus."""
BLENDED = 4
"""A detected neighbour within the blend radius (flux of another star in the aperture)."""
EDGE = 8
"""The aperture or the annulus runs off the image or off the covered area."""
PSF = 16
"""Flux from PSF photometry (crowded star) instead of the aperture."""
FROM_SHORT = 32
"""Magnitude taken from the short-exposure stack (saturated or absent in the long one)."""
NO_APCORR = 64
"""No curve of growth could be measured (or it disagreed with the profile fitted to the
stars' pixels); a model aperture correction was used."""
COLOUR_ASSUMED = 128
"""Calibrated without a measured colour (a band missing): the colour term used a typical colour."""

FLAG_NAMES: dict[int, str] = {SATURATED: "saturated", NEAR_MASK: "near_mask",
                              BLENDED: "blended", EDGE: "edge", PSF: "psf",
                              FROM_SHORT: "from_short", NO_APCORR: "no_apcorr",
                              COLOUR_ASSUMED: "colour_assumed"}

#: Flags that make a measurement unfit for calibration fits and truth comparisons.
BAD = SATURATED | NEAR_MASK | EDGE


def describe(flags: int) -> list[str]:
    """Names of the bits set in ``flags``."""
    return [name for bit, name in FLAG_NAMES.items() if int(flags) & bit]


def is_clean(flags: np.ndarray, bad: int = BAD | BLENDED) -> np.ndarray:
    """True where none of the ``bad`` bits is set."""
    return (np.asarray(flags, dtype=np.int64) & bad) == 0
