"""Raw FITS frames as the telescope writes them: primary HDU, uint16, observing headers only.

No WCS keywords and nothing from the truth beyond what a real camera would record.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from tgpcore.io.atomic import atomic_path
from tgpcore.simulate.detector import Detector
from tgpcore.simulate.site import Site

TELESCOPE = "TGP-SIM 1.0m"
INSTRUMENT = "SIMCAM"


def raw_header(frame: dict[str, Any], detector: Detector, site: Site,
               header_read_noise_factor: float = 1.0) -> fits.Header:
    """Header cards of one raw frame (the primary HDU's structural cards come from astropy).

    Parameters
    ----------
    frame : dict
        A planned frame (see :func:`tgpcore.simulate.schedule.plan_night`).
    detector : Detector
        The camera (gain, read noise, sections).
    site : Site
        The observatory.
    header_read_noise_factor : float
        The RDNOISE card is the true read noise times this (a stale header).

    Returns
    -------
    astropy.io.fits.Header
    """
    h = fits.Header()
    h["TELESCOP"] = (TELESCOPE, "telescope")
    h["INSTRUME"] = (INSTRUMENT, "camera")
    h["OBSERVAT"] = (site.name, "observatory")
    h["LATITUDE"] = (site.latitude_deg, "[deg] site latitude")
    h["LONGITUD"] = (site.longitude_deg, "[deg] site east longitude")
    h["ALTITUDE"] = (site.height_m, "[m] site height")
    h["IMAGETYP"] = (frame["imagetyp"], "frame type")
    h["OBJECT"] = (frame["object"], "object name")
    if frame["filter"]:
        h["FILTER"] = (frame["filter"], "filter")
    h["EXPTIME"] = (float(frame["exptime_s"]), "[s] exposure time")
    h["DATE-OBS"] = (frame["date_obs"], "UTC start of exposure")
    h["MJD-OBS"] = (float(frame["mjd_obs"]), "MJD (UTC) start of exposure")
    if math.isfinite(frame["ra_header_deg"]):
        h["RA"] = (float(frame["ra_header_deg"]), "[deg] telescope RA (J2000)")
        h["DEC"] = (float(frame["dec_header_deg"]), "[deg] telescope DEC (J2000)")
        h["EQUINOX"] = (2000.0, "equinox of RA, DEC")
        h["AIRMASS"] = (float(frame["airmass"]), "airmass at mid-exposure")
    h["GAIN"] = (detector.gain_e_per_adu, "[e-/ADU] gain")
    h["RDNOISE"] = (round(detector.read_noise_e * header_read_noise_factor, 3),
                    "[e-] read noise")
    h["SATURATE"] = (detector.saturation_adu, "[ADU] saturation level")
    h["XBINNING"] = (1, "binning in x")
    h["YBINNING"] = (1, "binning in y")
    h["CCD-TEMP"] = (float(frame["ccd_temp_c"]), "[C] CCD temperature")
    if detector.n_overscan > 0:   # a window read out without overscan has neither card
        h["BIASSEC"] = (detector.biassec, "overscan section")
        h["TRIMSEC"] = (detector.trimsec, "imaging section")
    return h


def write_raw_frame(path: str | Path, data: np.ndarray, header: fits.Header) -> Path:
    """Write uint16 ``data`` (BITPIX=16, BZERO=32768) with ``header`` atomically."""
    if data.dtype != np.uint16:
        raise TypeError("raw frames are uint16")
    hdu = fits.PrimaryHDU(data=data, header=header)
    with atomic_path(path) as tmp:
        hdu.writeto(tmp)
    return Path(path)
