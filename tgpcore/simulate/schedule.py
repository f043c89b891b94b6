"""The night's plan: every frame's type, time, pointing, airmass and conditions.

Afternoon: biases, darks and dome flats. Night: standard-field visits at their planned UT
(done between science pointings once due), science pointings with dithers (and a short
exposure per filter), then the remaining standard visits.

Pointing model: the header RA/DEC is the commanded position (nominal pointing plus the
commanded dither offset). The true position is off by a night-wide pointing error (a few
arcmin) plus a per-pointing jitter. A dither (dx, dy) moves the stars by (dx, dy) pixels
relative to the pointing's first exposure; the camera has a small night-wide rotation plus a
per-exposure rotation jitter.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from tgpcore.gnomonic import from_tangent
from tgpcore.simulate.photsys import PhotometricSystem
from tgpcore.simulate.presets import STANDARD_FIELDS, SimPreset
from tgpcore.simulate.site import Site, airmass
from tgpcore.simulate.wcs import cd_matrix, distortion_params, wcs_params

READOUT_S = 20.0
FILTER_CHANGE_S = 10.0
SLEW_S = 90.0
_EFF_WAVELENGTH_UM = {"U": 0.36, "B": 0.44, "V": 0.55, "R": 0.66, "I": 0.81}


def _mjd0(night_date: str) -> float:
    d = dt.date.fromisoformat(night_date)
    return float((d - dt.date(1858, 11, 17)).days)


def _iso(night_date: str, t_s: float) -> str:
    start = dt.datetime.fromisoformat(night_date)
    return (start + dt.timedelta(milliseconds=round(t_s * 1000))).isoformat(timespec="milliseconds")


class _Conditions:
    """Smooth seeing, Moffat beta and bias drift through the night (seeded)."""

    def __init__(self, p: SimPreset, rng: np.random.Generator) -> None:
        self.p = p
        self.seeing0 = rng.uniform(1.05, 1.45)
        self.s_amp = rng.uniform(0.03, 0.10, 3)
        self.s_per = rng.uniform(0.7, 3.0, 3) * 3600.0
        self.s_ph = rng.uniform(0, 2 * np.pi, 3)
        self.b_mid = rng.uniform(2.8, 3.4)
        self.b_ph = rng.uniform(0, 2 * np.pi)
        self.bias_ph = rng.uniform(0, 2 * np.pi)

    def seeing(self, t_s: float, filt: str, x: float, rng: np.random.Generator) -> float:
        log_s = np.log(self.seeing0) + np.sum(self.s_amp * np.sin(2 * np.pi * t_s / self.s_per
                                                                   + self.s_ph))
        s = np.exp(log_s) * (_EFF_WAVELENGTH_UM[filt] / 0.55) ** -0.2 * x**0.6
        s *= np.exp(rng.normal(0.0, 0.03))
        lo, hi = self.p.seeing_range_arcsec
        return float(np.clip(s, lo, hi))

    def beta(self, t_s: float, rng: np.random.Generator) -> float:
        b = self.b_mid + 0.3 * np.sin(2 * np.pi * t_s / (5 * 3600.0) + self.b_ph)
        lo, hi = self.p.moffat_beta_range
        return float(np.clip(b + rng.normal(0.0, 0.1), lo, hi))

    def bias_level(self, t_s: float, rng: np.random.Generator) -> float:
        drift = self.p.bias_drift_adu * np.sin(2 * np.pi * t_s / (7 * 3600.0) + self.bias_ph)
        return float(self.p.bias_level_adu + drift + rng.normal(0.0, 0.3))


def _blank_frame() -> dict[str, Any]:
    nan = float("nan")
    return {"kind": "", "imagetyp": "", "filter": "", "object": "", "target": "",
            "pointing_index": -1, "visit": -1, "dither_index": -1, "exposure_class": "",
            "exptime_s": 0.0, "date_obs": "", "mjd_obs": nan, "mjd_mid": nan,
            "epoch_jyear": nan, "airmass": nan, "seeing_fwhm_arcsec": nan, "moffat_beta": nan,
            "sky_e_per_s": nan, "cloud_mag": 0.0, "bias_level_adu": nan, "flat_level_adu": nan,
            "ccd_temp_c": nan, "ra_header_deg": nan, "dec_header_deg": nan,
            "ra_true_deg": nan, "dec_true_deg": nan, "dither_dx_px": 0.0, "dither_dy_px": 0.0,
            "rotation_deg": nan, "crval1": nan, "crval2": nan, "crpix1": nan, "crpix2": nan,
            "cd1_1": nan, "cd1_2": nan, "cd2_1": nan, "cd2_2": nan}


def plan_night(p: SimPreset, site: Site, system: PhotometricSystem,
               rng: np.random.Generator) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Plan every frame of the night.

    Parameters
    ----------
    p : SimPreset
        The night's parameters.
    site : Site
        The observatory (for airmasses).
    system : PhotometricSystem
        For the sky rate in e-/s.
    rng : numpy.random.Generator
        Random generator of the schedule.

    Returns
    -------
    frames : list of dict
        In time order, with the columns of ``frames.ecsv`` except ``filename`` and the
        per-frame products.
    pointing : dict
        The night-wide pointing model (error in arcmin east/north, camera rotation, and the
        per-pointing jitters).

    Raises
    ------
    ValueError
        If a target is below 20 degrees altitude at its planned time.
    """
    cond = _Conditions(p, rng)
    mjd0 = _mjd0(p.night_date)
    err_mag = p.pointing_error_arcmin * rng.uniform(0.6, 1.0)
    err_pa = rng.uniform(0, 2 * np.pi)
    err = (err_mag * np.sin(err_pa), err_mag * np.cos(err_pa))  # arcmin (east, north)
    rot0 = float(rng.uniform(-p.camera_rotation_max_deg, p.camera_rotation_max_deg))
    cpix = ((p.nx + 1) / 2.0, (p.ny + 1) / 2.0)
    fov = p.field_of_view_arcmin()
    frames: list[dict[str, Any]] = []
    t = p.calibration_start_ut_h * 3600.0
    jitters: dict[str, list[float]] = {}

    def add(frame: dict[str, Any], exptime: float) -> None:
        nonlocal t
        f = _blank_frame()
        f.update(frame)
        f["exptime_s"] = float(exptime)
        f["date_obs"] = _iso(p.night_date, t)
        f["mjd_obs"] = round(mjd0 + t / 86400.0, 8)
        f["mjd_mid"] = mjd0 + (t + exptime / 2.0) / 86400.0
        f["epoch_jyear"] = 2000.0 + (f["mjd_mid"] - 51544.5) / 365.25
        f["bias_level_adu"] = cond.bias_level(t, rng)
        f["ccd_temp_c"] = round(p.ccd_temp_c + rng.normal(0.0, 0.05), 2)
        frames.append(f)
        t = round(t + exptime + READOUT_S, 3)

    for _ in range(p.n_bias):
        add({"kind": "bias", "imagetyp": "BIAS", "object": "bias"}, 0.0)
    for exp in p.dark_exptimes_s:
        for _ in range(p.n_dark_per_exptime):
            add({"kind": "dark", "imagetyp": "DARK", "object": "dark"}, exp)
    for f in p.filters:
        t += FILTER_CHANGE_S
        for _ in range(p.n_flat_per_filter):
            lo, hi = p.flat_level_adu_range
            add({"kind": "flat", "imagetyp": "FLAT", "filter": f, "object": f"flat {f}",
                 "flat_level_adu": float(rng.uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo)))},
                p.flat_exptime_s[f])

    def sky_block(kind: str, target: str, nominal: tuple[float, float], pidx: int, visit: int,
                  exposures: list[tuple[str, float, str, int]]) -> None:
        """One pointing: slew, then exposures (filter, exptime, class, dither index)."""
        nonlocal t
        t += SLEW_S
        jit = rng.normal(0.0, p.pointing_jitter_arcsec / 60.0, 2)  # arcmin
        jitters[f"{target}/{pidx}/{visit}"] = [float(jit[0]), float(jit[1])]
        off = (err[0] + jit[0], err[1] + jit[1])
        true_ra, true_dec = from_tangent(nominal[0], nominal[1], off[0] / 60.0, off[1] / 60.0)
        cd0 = cd_matrix(p.pixel_scale_arcsec, 0.0)
        last_filter = None
        for filt, exptime, eclass, d in exposures:
            if filt != last_filter:
                t += FILTER_CHANGE_S
                last_filter = filt
            if d > 0:
                dx, dy = rng.uniform(-p.dither_max_px, p.dither_max_px, 2)
                drot = rng.uniform(-p.dither_max_rotation_deg, p.dither_max_rotation_deg)
            else:
                dx = dy = drot = 0.0
            dx, dy = round(float(dx), 3), round(float(dy), 3)
            rot = rot0 + drot
            params = wcs_params((float(true_ra), float(true_dec)), (cpix[0] + dx, cpix[1] + dy),
                                p.pixel_scale_arcsec, rot)
            cd = np.array([[params["cd1_1"], params["cd1_2"]], [params["cd2_1"], params["cd2_2"]]])
            xi_t, eta_t = cd @ np.array([-dx, -dy])
            ra_t, dec_t = from_tangent(params["crval1"], params["crval2"], xi_t, eta_t)
            xi_h, eta_h = cd0 @ np.array([-dx, -dy])
            ra_h, dec_h = from_tangent(nominal[0], nominal[1], xi_h, eta_h)
            mjd_mid = mjd0 + (t + exptime / 2.0) / 86400.0
            x = float(airmass(float(ra_t), float(dec_t), mjd_mid, site))
            if not np.isfinite(x) or x > 2.9:
                raise ValueError(f"{target} is too low (airmass {x:.2f}) at UT "
                                 f"{t / 3600.0:.2f} h; change the preset's schedule")
            x = round(x, 4)
            sky_mag = p.sky_mag_arcsec2[filt] + rng.normal(0.0, 0.05) - 0.15 * (x - 1.0)
            ut_mid = (t + exptime / 2.0) / 3600.0
            cloud = sum(m for lo, hi, m in p.clouds if lo <= ut_mid < hi)
            sky_rate = system.sky_e_per_s(filt, sky_mag, p.pixel_scale_arcsec)
            if cloud > 0:
                sky_rate *= p.cloud_sky_factor
            add({"kind": kind, "imagetyp": "LIGHT", "filter": filt, "object": target,
                 "target": target, "pointing_index": pidx, "visit": visit, "dither_index": d,
                 "exposure_class": eclass, "airmass": x,
                 "seeing_fwhm_arcsec": round(cond.seeing(t, filt, x, rng), 4),
                 "moffat_beta": round(cond.beta(t, rng), 4),
                 "sky_e_per_s": sky_rate, "cloud_mag": float(cloud),
                 "ra_header_deg": round(float(ra_h), 5), "dec_header_deg": round(float(dec_h), 5),
                 "ra_true_deg": float(ra_t), "dec_true_deg": float(dec_t),
                 "dither_dx_px": dx, "dither_dy_px": dy, "rotation_deg": rot, **params}, exptime)

    visits = sorted(p.standard_visits, key=lambda v: v[1])
    done = [False] * len(visits)
    n_visit: dict[str, int] = {}

    def standard_visit(i: int) -> None:
        nonlocal t
        name, ut = visits[i]
        t = max(t, ut * 3600.0)
        n = n_visit.get(name, 0)
        n_visit[name] = n + 1
        sky_block("standard", name, STANDARD_FIELDS[name], 0, n,
                  [(f, p.standard_exptime_s[f], "", 0) for f in p.filters])
        done[i] = True

    for pidx, (fx, fy) in enumerate(p.pointing_offsets):
        for i, (_, ut) in enumerate(visits):
            if not done[i] and ut * 3600.0 <= max(t, p.science_start_ut_h * 3600.0):
                standard_visit(i)
        t = max(t, p.science_start_ut_h * 3600.0)
        xi, eta = fx * fov[0] / 60.0, fy * fov[1] / 60.0
        nominal = from_tangent(p.cluster_ra_deg, p.cluster_dec_deg, xi, eta)
        exposures = []
        for f in p.filters:
            if p.short_exptime_s:
                exposures.append((f, p.short_exptime_s, "short", 0))
            exposures += [(f, p.long_exptime_s[f], "long", d) for d in range(p.n_dither)]
        sky_block("science", p.cluster_name, (round(float(nominal[0]), 6),
                                              round(float(nominal[1]), 6)), pidx, 0, exposures)
    for i in range(len(visits)):
        if not done[i]:
            standard_visit(i)
    if p.distortion_k3:  # a distorted camera: every frame says so (the columns' absence,
        # as before distortion existed, means none)
        for f in frames:
            f.update(distortion_params(p.nx, p.ny, p.distortion_k3))
    pointing = {"error_east_arcmin": float(err[0]), "error_north_arcmin": float(err[1]),
                "camera_rotation_deg": rot0, "jitter_arcmin": jitters,
                "convention": "true = commanded + error + jitter (tangent-plane offsets)"}
    return frames, pointing
