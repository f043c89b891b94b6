"""Alarms: what a user must learn about a night before they read its science.

An alarm is a figure beyond a threshold, with the reason the threshold matters. The
thresholds are data (:class:`AlarmThresholds`, each with its reason); the checks that compare
a stage's figures with them are in :mod:`tgpcore.qc.checks`. The run database stores alarms,
the log and the console print them, and the report shows them first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

LEVELS = ("warning", "error")


@dataclass(frozen=True)
class Alarm:
    """One alarm.

    Attributes
    ----------
    code : str
        What kind (``masked_fraction``, ``non_photometric``, ...): a key of
        :data:`AlarmThresholds.reasons`.
    stage : str
        The stage that raised it.
    subject : str
        What it is about: a frame's file name, a stack id, a filter, ``night``.
    value, threshold : float
        The figure and the limit it crossed.
    message : str
        What happened, in the user's terms, with the numbers.
    level : str
        ``warning`` (the science may be affected) or ``error`` (it is).
    """

    code: str
    stage: str
    subject: str
    value: float
    threshold: float
    message: str
    level: str = "warning"

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"alarm level must be one of {LEVELS}, not {self.level!r}")

    @property
    def reason(self) -> str:
        """Why the threshold matters."""
        return AlarmThresholds.reasons.get(self.code, "")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (with the reason)."""
        return {**asdict(self), "reason": self.reason}

    def line(self) -> str:
        """One line for a log or a console."""
        return f"{self.level.upper()} [{self.stage}] {self.subject}: {self.message}"


@dataclass(frozen=True)
class AlarmThresholds:
    """Where each alarm fires. Every threshold has its reason in :attr:`reasons`."""

    masked_fraction: float = 0.02
    cosmic_pixel_fraction: float = 1e-3
    cosmic_short_over_long: float = 0.6
    cosmic_min_exposure_ratio: float = 5.0
    repeated_cosmic_fraction: float = 1e-4
    sky_change: float = 0.25
    transparency_mag: float = 0.05
    transparency_sigma: float = 3.0
    uncovered_fraction: float = 0.05
    negative_flux_per_mpx: float = 100.0
    zero_point_jump_mag: float = 0.05
    zero_point_jump_sigma: float = 3.0
    sky_bright_margin_mag: float = 2.0
    dark_sky_mag_arcsec2: dict[str, float] = field(default_factory=lambda: {
        "U": 22.0, "B": 22.7, "V": 21.8, "R": 21.2, "I": 19.9})
    astrometric_rms_arcsec: float = 0.3
    astrometric_rms_px: float = 0.5

    #: Why each threshold is where it is.
    reasons = {
        "masked_fraction": (
            "a healthy calibrated frame masks its saturated stars, cosmic rays and bad "
            "columns: well under 1 % of its pixels; more than 2 % means a master or the "
            "detector is wrong, and stars near masks lose their photometry"),
        "cosmic_ray_rate": (
            "cosmic rays hit a CCD at a few per cm2 per minute: more than 0.1 % of a "
            "frame's pixels flagged means something else (a bad master, hot pixels, "
            "correlated read noise) is being taken for cosmic rays"),
        "cosmic_ray_scaling": (
            "cosmic rays accumulate with time: frames 5x shorter should carry clearly "
            "fewer; as many in the short frames as in the long ones means the flags come "
            "from the detector or the calibration, not from the sky"),
        "repeated_cosmic_pixels": (
            "a cosmic ray does not hit the same pixel twice in a night: pixels flagged in "
            "most frames are hot pixels or a master's defect"),
        "sky_change": (
            "the sky of one field in one filter should change little within a night; a "
            "change of more than 25 % means moonrise, twilight or clouds lit by the moon "
            "or a city"),
        "non_photometric": (
            "on a photometric night the same stars give the same count rate in every "
            "frame of a filter, to about 0.02 mag; jumps of more than 0.05 mag (and 3 "
            "sigma) are clouds or a changing transparency, and one zero point per night "
            "is then wrong"),
        "uncovered_fraction": (
            "a stack should cover its reference grid except at the dither edges; more "
            "than 5 % without any frame means lost frames or large holes in the masks"),
        "negative_flux": (
            "a detection with negative flux is noise or an artefact; noise peaks at the "
            "detection threshold give about 15-25 of them per million pixels, so more than "
            "100 means a bad background, or defects or holes taken for stars"),
        "zero_point_jump": (
            "the short and long stacks of one field and filter measure the same stars in "
            "count rates: they should agree to about 0.02 mag; more than 0.05 mag (and 3 "
            "sigma) means clouds between them, or a shutter timing error"),
        "sky_brightness": (
            "the sky brighter than a dark site's by more than 2 mag/arcsec2 (moon, "
            "twilight, clouds lit from below) raises the noise and the limiting "
            "magnitude"),
        "astrometry": (
            "star centroids are good to a tenth of a pixel; residuals of more than 0.3\" "
            "(and half a pixel) against the reference mean a poor plate solution, and the "
            "cross-match suffers"),
    }

    def names(self) -> list[str]:
        """The threshold fields."""
        return [f.name for f in fields(self)]
