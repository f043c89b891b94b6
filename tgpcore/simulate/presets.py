"""Simulation presets: every knob of a simulated night, in one dataclass.

``PRESETS`` holds ``tiny`` (unit tests), ``demo`` (the README's demo night) and ``bench``
(enough 2k x 2k frames to load a machine). :func:`resolve_preset` applies user overrides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

FILTERS_UBV: tuple[str, ...] = ("U", "B", "V")

# Landolt-like standard fields: nominal centres (ICRS, degrees).
STANDARD_FIELDS: dict[str, tuple[float, float]] = {
    "SA 95": (58.50, 0.10),
    "SA 98": (103.00, -0.30),
    "SA 101": (149.40, -0.40),
}


def _ubv(u: float, b: float, v: float) -> dict[str, float]:
    return {"U": u, "B": b, "V": v}


@dataclass(frozen=True)
class SimPreset:
    """All parameters of a simulated night (defaults are those of ``demo``).

    Angles in degrees or arcminutes/arcseconds as the field name says, times in seconds,
    hours in UT hours after 0h of ``night_date`` (values above 24 are the next morning).
    """

    name: str = "demo"

    # Detector: imaging area nx x ny plus n_overscan columns to the right.
    nx: int = 1024
    ny: int = 1024
    n_overscan: int = 32
    pixel_scale_arcsec: float = 0.5
    pixel_size_um: float = 24.0
    # Optical distortion, radial about the detector centre: the sky seen at r px from the
    # centre is what an ideal camera shows at r (1 + k3 (r / r_corner)^2), r_corner the
    # half-diagonal; k3 is the fractional displacement at the corners (0.004 moves a corner of
    # a 1024^2 detector by 2.9 px). With k3 != 0 the truth WCS is TAN-SIP (cubic).
    distortion_k3: float = 0.0
    gain_e_per_adu: float = 1.4
    read_noise_e: float = 5.0
    # What the header's RDNOISE card says, as a multiple of the true read noise (real headers
    # are often stale: the CAHA/CAFOS night's CCDRON says 7.4 e-, its biases 15 e-).
    header_read_noise_factor: float = 1.0
    # Electronic pickup in the read noise: a sinusoid along each row with a random phase per
    # row and frame (RMS in e-). The CAFOS biases carry one at 0.341 cycles/px holding about
    # two thirds of their 15 e- of noise: per pixel it is read noise like any other, but
    # L.A.Cosmic's Laplacian amplifies it (a white-noise model then takes its peaks for hits).
    pickup_noise_e: float = 0.0
    pickup_cycles_per_px: float = 0.341
    bias_level_adu: float = 1000.0
    bias_drift_adu: float = 3.0
    full_well_e: float = 150000.0
    saturation_adu: int = 65535
    dark_current_e_per_s: float = 0.02
    hot_pixel_fraction: float = 0.001
    hot_pixel_rate_range_e_per_s: tuple[float, float] = (0.5, 50.0)
    n_dead_columns: int = 1
    n_low_columns: int = 2
    dead_pixel_fraction: float = 5e-5
    prnu: float = 0.01
    vignetting_corner: dict[str, float] = field(default_factory=lambda: _ubv(0.14, 0.11, 0.09))
    n_dust_donuts: int = 4
    ccd_temp_c: float = -110.0
    cr_rate_per_cm2_s: float = 0.05

    # Calibration frames.
    n_bias: int = 10
    dark_exptimes_s: tuple[float, ...] = (60.0, 300.0)
    n_dark_per_exptime: int = 3
    n_flat_per_filter: int = 5
    flat_exptime_s: dict[str, float] = field(default_factory=lambda: _ubv(40.0, 12.0, 6.0))
    flat_level_adu_range: tuple[float, float] = (15000.0, 30000.0)

    # Science frames.
    filters: tuple[str, ...] = FILTERS_UBV
    long_exptime_s: dict[str, float] = field(default_factory=lambda: _ubv(120.0, 90.0, 60.0))
    short_exptime_s: float | None = 5.0
    pointing_offsets: tuple[tuple[float, float], ...] = ((0.0, 0.0), (1 / 3, 0.0), (0.0, 1 / 3))
    n_dither: int = 3
    dither_max_px: float = 6.0
    dither_max_rotation_deg: float = 0.2
    camera_rotation_max_deg: float = 0.3
    pointing_error_arcmin: float = 2.0
    pointing_jitter_arcsec: float = 8.0
    science_start_ut_h: float = 21.3

    # Standard-star fields.
    standard_visits: tuple[tuple[str, float], ...] = (("SA 98", 19.5), ("SA 98", 21.0),
                                                      ("SA 98", 24.0))
    standard_exptime_s: dict[str, float] = field(default_factory=lambda: _ubv(20.0, 6.0, 4.0))
    n_standards_per_field: int = 12
    standard_v_range: tuple[float, float] = (10.0, 16.0)
    standard_bv_range: tuple[float, float] = (-0.2, 1.6)
    standard_field_density_arcmin2: float = 3.0

    # Sky and atmosphere.
    night_date: str = "2024-01-15"
    calibration_start_ut_h: float = 16.0
    seeing_range_arcsec: tuple[float, float] = (1.0, 2.2)
    moffat_beta_range: tuple[float, float] = (2.5, 4.0)
    sky_mag_arcsec2: dict[str, float] = field(default_factory=lambda: _ubv(21.6, 22.1, 21.1))
    # Clouds: (start, end, grey extinction in mag) in UT hours of the night; a sky frame whose
    # mid-exposure falls in a window loses that much of its starlight (a non-photometric
    # night), and its sky brightens by ``cloud_sky_factor`` (moonlight or city light scattered
    # by the cloud).
    clouds: tuple[tuple[float, float, float], ...] = ()
    cloud_sky_factor: float = 1.0

    # Photometric system: m_std - m_inst = ZP - k X + c colour.
    zero_point: dict[str, float] = field(default_factory=lambda: _ubv(22.0, 23.5, 23.6))
    extinction_coeff: dict[str, float] = field(default_factory=lambda: _ubv(0.45, 0.25, 0.15))
    colour_term: dict[str, float] = field(default_factory=lambda: _ubv(0.08, 0.05, -0.03))

    # The cluster.
    cluster_name: str = "SIM-NGC1"
    cluster_ra_deg: float = 97.5
    cluster_dec_deg: float = 24.5
    log_age: float = 8.64
    mh: float = 0.05
    distance_pc: float = 1500.0
    ebv: float = 0.30
    core_radius_arcmin: float = 1.2
    tidal_radius_arcmin: float = 9.0
    n_cluster_systems: int = 2500
    binary_fraction: float = 0.3
    cluster_pmra_masyr: float = -0.9
    cluster_pmdec_masyr: float = -2.6
    cluster_velocity_dispersion_kms: float = 0.8

    # Field stars and catalogues.
    field_density_arcmin2: float = 10.0
    field_ebv_per_kpc: float = 0.2
    faint_limit_v: float = 23.0
    region_margin_arcmin: float = 1.5
    gaia_limit_g: float = 20.5

    # Rendering.
    stamp_enclosed_fraction: float = 0.995
    stamp_tolerance_e: float = 0.5
    stamp_max_half_px: int = 160

    def field_of_view_arcmin(self) -> tuple[float, float]:
        """Size (x, y) of the imaging area on the sky in arcminutes."""
        return (self.nx * self.pixel_scale_arcsec / 60.0, self.ny * self.pixel_scale_arcsec / 60.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of all fields (tuples become lists)."""
        return dataclasses.asdict(self)


PRESETS: dict[str, SimPreset] = {
    "tiny": SimPreset(
        name="tiny", nx=256, ny=256, n_overscan=16,
        n_dead_columns=1, n_low_columns=1, n_dust_donuts=2, cr_rate_per_cm2_s=0.5,
        n_bias=3, dark_exptimes_s=(20.0, 60.0), n_dark_per_exptime=1, n_flat_per_filter=3,
        long_exptime_s=_ubv(60.0, 30.0, 20.0), short_exptime_s=None,
        pointing_offsets=((0.0, 0.0), (1 / 3, 0.0)), n_dither=2,
        pointing_error_arcmin=0.4, pointing_jitter_arcsec=3.0,
        n_standards_per_field=6, standard_field_density_arcmin2=3.0,
        core_radius_arcmin=0.4, tidal_radius_arcmin=3.0, n_cluster_systems=700,
        field_density_arcmin2=10.0, region_margin_arcmin=0.5,
    ),
    "demo": SimPreset(name="demo"),
    # What the real CAHA/CAFOS night of NGC 2420 taught (issue 20): a window read out without
    # overscan (the bias level is in the master bias), two biases, a read noise of 10 e- of
    # which 5 e- is white (what the header says) and the rest pickup along the rows, no darks, one flat per filter, a bright (moonlit) sky, and a cloud passing
    # during the cluster's exposures. The image stages must calibrate it as cleanly as ``tiny``.
    # Without an overscan, nothing follows a drifting bias level: like CAFOS's (both biases at
    # 672 ADU), this one holds still.
    "realsky": SimPreset(
        name="realsky", nx=256, ny=256, n_overscan=0, read_noise_e=5.0, bias_drift_adu=0.0,
        pickup_noise_e=8.66, header_read_noise_factor=1.0,
        n_dead_columns=1, n_low_columns=1, n_dust_donuts=2, cr_rate_per_cm2_s=0.05,
        n_bias=2, dark_exptimes_s=(), n_dark_per_exptime=0, n_flat_per_filter=1,
        dark_current_e_per_s=0.002, hot_pixel_fraction=0.0005,
        long_exptime_s=_ubv(60.0, 30.0, 20.0), short_exptime_s=3.0,
        pointing_offsets=((0.0, 0.0),), n_dither=3,
        pointing_error_arcmin=0.4, pointing_jitter_arcsec=3.0,
        sky_mag_arcsec2=_ubv(19.0, 19.6, 19.0),
        clouds=((21.3, 21.36, 0.0), (21.36, 21.42, 0.35)), cloud_sky_factor=1.3,
        n_standards_per_field=6, standard_field_density_arcmin2=3.0,
        core_radius_arcmin=0.4, tidal_radius_arcmin=3.0, n_cluster_systems=700,
        field_density_arcmin2=10.0, region_margin_arcmin=0.5,
    ),
    "bench": SimPreset(
        name="bench", nx=2048, ny=2048, n_overscan=32, pixel_size_um=13.5,
        n_bias=15, n_dark_per_exptime=6, n_flat_per_filter=10,
        long_exptime_s=_ubv(180.0, 120.0, 90.0), n_dither=4,
        pointing_error_arcmin=3.0,
        standard_visits=(("SA 95", 18.95), ("SA 98", 19.5), ("SA 98", 21.0), ("SA 95", 22.5),
                         ("SA 95", 24.0), ("SA 98", 24.0), ("SA 101", 24.5), ("SA 101", 26.5),
                         ("SA 101", 29.4)),
        n_standards_per_field=15,
        core_radius_arcmin=2.0, tidal_radius_arcmin=14.0, n_cluster_systems=7000,
    ),
}


def resolve_preset(preset: str | SimPreset = "tiny", **overrides: Any) -> SimPreset:
    """Return a preset by name (or the given one) with fields overridden.

    Parameters
    ----------
    preset : str or SimPreset
        A name in :data:`PRESETS` or a preset object.
    **overrides
        Field values to replace, e.g. ``n_dither=5`` or ``ebv=0.5``.

    Returns
    -------
    SimPreset
        A new preset; the originals are never modified.

    Raises
    ------
    KeyError
        For an unknown preset name.
    TypeError
        For an unknown field name.
    """
    base = PRESETS[preset] if isinstance(preset, str) else preset
    known = {f.name for f in dataclasses.fields(SimPreset)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown preset field(s) {unknown}; known: {sorted(known)}")
    return dataclasses.replace(base, **overrides) if overrides else base
