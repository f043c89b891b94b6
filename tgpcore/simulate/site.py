"""The observatory: its place on Earth, sidereal time, altitude and airmass."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MJD_J2000 = 51544.5


@dataclass(frozen=True)
class Site:
    """An observatory location (geodetic latitude and east longitude in degrees, height in m)."""

    name: str = "TGP-SIM Observatory"
    latitude_deg: float = 37.2236
    longitude_deg: float = -2.5463
    height_m: float = 2168.0

    def to_dict(self) -> dict:
        """Plain dictionary (for truth.json)."""
        return asdict(self)


def local_sidereal_deg(mjd: np.ndarray | float, longitude_deg: float) -> np.ndarray:
    """Local mean sidereal time in degrees (GMST of IAU 1982 with UT1 = UTC; < 1 s error).

    Parameters
    ----------
    mjd : float or array
        Modified Julian date (UTC).
    longitude_deg : float
        East longitude of the site.
    """
    d = np.asarray(mjd, dtype=float) - MJD_J2000
    t = d / 36525.0
    gmst = 280.46061837 + 360.98564736629 * d + 0.000387933 * t**2 - t**3 / 38710000.0
    return np.mod(gmst + longitude_deg, 360.0)


def altitude_deg(ra_deg, dec_deg, mjd, site: Site) -> np.ndarray:
    """Geometric altitude (degrees) of (ra, dec) at ``mjd`` from ``site`` (no refraction)."""
    ha = np.radians(local_sidereal_deg(mjd, site.longitude_deg) - np.asarray(ra_deg))
    lat, dec = np.radians(site.latitude_deg), np.radians(np.asarray(dec_deg))
    sin_alt = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(ha)
    return np.degrees(np.arcsin(np.clip(sin_alt, -1.0, 1.0)))


def airmass(ra_deg, dec_deg, mjd, site: Site) -> np.ndarray:
    """Airmass of (ra, dec) at ``mjd`` (Pickering 2002 formula; NaN below 2° altitude).

    Parameters
    ----------
    ra_deg, dec_deg : float or array
        ICRS coordinates in degrees.
    mjd : float or array
        Modified Julian date (UTC).
    site : Site
        The observatory.

    Returns
    -------
    ndarray
        Relative air mass, 1.0 at the zenith.
    """
    h = altitude_deg(ra_deg, dec_deg, mjd, site)
    with np.errstate(invalid="ignore"):
        x = 1.0 / np.sin(np.radians(h + 244.0 / (165.0 + 47.0 * np.abs(h) ** 1.1)))
    return np.where(h > 2.0, x, np.nan)
