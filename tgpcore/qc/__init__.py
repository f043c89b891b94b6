"""Quality control: alarms that tell a user a night went wrong before its science does."""

from tgpcore.qc.alarms import Alarm, AlarmThresholds
from tgpcore.qc.checks import (
    FrameFigures,
    astrometry_alarms,
    frame_alarms,
    frame_figures,
    negative_flux_alarms,
    night_calibration_alarms,
    photcal_alarms,
    registration_alarms,
    sky_brightness_alarms,
    sky_surface_brightness,
    solve_alarms,
    stack_alarms,
    transparency_alarms,
    zero_point_jump_alarms,
)

__all__ = ["Alarm", "AlarmThresholds", "FrameFigures", "astrometry_alarms", "frame_alarms", "frame_figures",
           "negative_flux_alarms", "night_calibration_alarms", "photcal_alarms", "registration_alarms", "sky_brightness_alarms", "sky_surface_brightness", "solve_alarms",
           "stack_alarms", "transparency_alarms", "zero_point_jump_alarms"]
