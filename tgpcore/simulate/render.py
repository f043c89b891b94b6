"""The noiseless signal of a sky frame (sky + stars, in electrons), from the truth alone.

The signal is what reaches the detector during the exposure before the flat-field response
multiplies it: a uniform sky plus every star's Moffat stamp, placed with the frame's true WCS
at the star's position propagated by proper motion to the frame's epoch (through the optical
distortion when the camera has one), with a total flux
from the true photometric system (zero point, extinction x airmass, colour term).

The same function renders the frames during the simulation and for tests afterwards
(:func:`render_signal`), so the truth and the pixels cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.table import Table

from tgpcore.simulate.photsys import PhotometricSystem
from tgpcore.simulate.psf import render_moffat, stamp_half_sizes
from tgpcore.simulate.wcs import truth_wcs, world_to_pixel

GAIA_EPOCH = 2016.0
_MAS_PER_DEG = 3.6e6


@dataclass(frozen=True)
class RenderSettings:
    """What, besides a frame row and the stars, determines a frame's signal."""

    nx: int
    ny: int
    pixel_scale_arcsec: float
    system: PhotometricSystem
    stamp_enclosed_fraction: float = 0.995
    stamp_tolerance_e: float = 0.5
    stamp_max_half_px: int = 160

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RenderSettings:
        """From the ``truth.json`` dictionary."""
        pr = params["preset"]
        return cls(nx=int(pr["nx"]), ny=int(pr["ny"]),
                   pixel_scale_arcsec=float(pr["pixel_scale_arcsec"]),
                   system=PhotometricSystem.from_dict(params["photometric_system"]),
                   stamp_enclosed_fraction=float(pr["stamp_enclosed_fraction"]),
                   stamp_tolerance_e=float(pr["stamp_tolerance_e"]),
                   stamp_max_half_px=int(pr["stamp_max_half_px"]))


def positions_at_epoch(stars: Table, epoch_jyear: float) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) in degrees at ``epoch_jyear``, from Gaia-epoch (2016.0) positions and
    proper motions (linear in the tangent directions; parallax motion neglected)."""
    dt = float(epoch_jyear) - GAIA_EPOCH
    dec0 = np.asarray(stars["dec"], float)
    dec = dec0 + np.asarray(stars["pmdec_masyr"], float) * dt / _MAS_PER_DEG
    ra = np.asarray(stars["ra"], float) + (np.asarray(stars["pmra_masyr"], float) * dt
                                           / _MAS_PER_DEG / np.cos(np.radians(dec0)))
    return ra, dec


def frame_stars(stars: Table, frame: Mapping[str, Any], settings: RenderSettings) -> Table:
    """Stars whose stamps touch a sky frame: index into ``stars``, star_id, 0-based x, y,
    total flux (e-) and stamp half-size.

    Parameters
    ----------
    stars : astropy.table.Table
        The truth star table (``stars.ecsv``).
    frame : mapping
        The frame's row of ``frames.ecsv``.
    settings : RenderSettings
        Image size, pixel scale, photometric system, stamp rules.

    Returns
    -------
    astropy.table.Table
        Columns ``index``, ``star_id``, ``x``, ``y``, ``flux_e``, ``half``.
    """
    nx, ny = settings.nx, settings.ny
    ra, dec = positions_at_epoch(stars, frame["epoch_jyear"])
    ra0, dec0 = np.radians(float(frame["ra_true_deg"])), np.radians(float(frame["dec_true_deg"]))
    cos_sep = (np.sin(dec0) * np.sin(np.radians(dec))
               + np.cos(dec0) * np.cos(np.radians(dec)) * np.cos(np.radians(ra) - ra0))
    reach_deg = (np.hypot(nx, ny) / 2 + settings.stamp_max_half_px + 10) \
        * settings.pixel_scale_arcsec / 3600.0
    near = np.flatnonzero(cos_sep > np.cos(np.radians(reach_deg)))
    x, y = world_to_pixel(truth_wcs(frame), ra[near], dec[near])
    sub = stars[near]
    mags = {b: np.asarray(sub[b], float) for b in ("U", "B", "V")}
    flux = settings.system.flux_e_per_s(frame["filter"], mags, float(frame["airmass"])) \
        * float(frame["exptime_s"])
    names = frame.colnames if hasattr(frame, "colnames") else frame
    cloud = float(frame["cloud_mag"]) if "cloud_mag" in names else 0.0
    if cloud:
        flux = flux * 10.0 ** (-0.4 * cloud)
    fwhm_px = float(frame["seeing_fwhm_arcsec"]) / settings.pixel_scale_arcsec
    half = stamp_half_sizes(flux, fwhm_px, float(frame["moffat_beta"]),
                            enclosed=settings.stamp_enclosed_fraction,
                            tolerance_e=settings.stamp_tolerance_e,
                            max_half=settings.stamp_max_half_px)
    touch = ((x + half >= -0.5) & (x - half <= nx - 0.5)
             & (y + half >= -0.5) & (y - half <= ny - 0.5))
    return Table({"index": near[touch], "star_id": np.asarray(sub["star_id"])[touch],
                  "x": x[touch], "y": y[touch], "flux_e": flux[touch], "half": half[touch]})


def render_frame_signal(stars: Table, frame: Mapping[str, Any],
                        settings: RenderSettings) -> tuple[np.ndarray, Table]:
    """Noiseless signal (e-, imaging area) of a sky frame, and the stars on it.

    Returns
    -------
    image : ndarray
        float64 (ny, nx): sky_e_per_s * exptime + stars, before the flat-field response.
    sources : astropy.table.Table
        Stars whose centres lie on the imaging area: ``star_id``, ``x``, ``y`` (0-based
        pixels, x = column), ``flux_e`` (stamp sum = total flux), ``peak_e`` (brightest
        stamp pixel, without sky).
    """
    fs = frame_stars(stars, frame, settings)
    fwhm_px = float(frame["seeing_fwhm_arcsec"]) / settings.pixel_scale_arcsec
    image, peak = render_moffat((settings.ny, settings.nx), np.asarray(fs["x"]),
                                np.asarray(fs["y"]), np.asarray(fs["flux_e"]),
                                np.asarray(fs["half"]), fwhm_px, float(frame["moffat_beta"]))
    image += float(frame["sky_e_per_s"]) * float(frame["exptime_s"])
    on = ((fs["x"] >= -0.5) & (fs["x"] < settings.nx - 0.5)
          & (fs["y"] >= -0.5) & (fs["y"] < settings.ny - 0.5))
    sources = Table({"star_id": fs["star_id"][on], "x": fs["x"][on], "y": fs["y"][on],
                     "flux_e": fs["flux_e"][on], "peak_e": peak[np.asarray(on)]})
    return image, sources


def render_signal(truth, frame_row: Mapping[str, Any] | str) -> np.ndarray:
    """Regenerate a sky frame's noiseless signal from the truth written beside the frames.

    Parameters
    ----------
    truth : NightTruth or path-like
        The night (as returned by :func:`tgpcore.simulate.simulate_night`) or its root folder.
    frame_row : mapping or str
        The frame's row of ``frames.ecsv``, or its raw file name (e.g. ``"sim_0031.fits"``).

    Returns
    -------
    ndarray
        float64 (ny, nx) in electrons over the imaging area: sky + stars, before the flat
        field, without dark current, bias, noise or cosmic rays. The raw frame's imaging area
        is ``(signal * flat + dark * t + noise + cosmic rays) / gain + bias``.
    """
    from tgpcore.simulate.truth import load_truth

    nt = load_truth(truth)
    row = nt.frame(frame_row) if isinstance(frame_row, str) else frame_row
    if row["kind"] not in ("science", "standard"):
        raise ValueError(f"{row['filename']} is a {row['kind']} frame: no sky signal")
    image, _ = render_frame_signal(nt.stars(), row, RenderSettings.from_params(nt.params()))
    return image
