"""The astrometric sample a membership analysis works on, built from a Gaia-like table.

Positions become tangent-plane offsets (arcmin) about the cone centre; proper motions and
parallaxes become an (N, 3) array with a per-star (N, 3, 3) error covariance built from the
``*_error`` and ``*_corr`` columns (or, where the table has no errors, from the typical DR3
errors at the star's G; the sample then says ``errors_estimated``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from tgpcore.catalogs.columns import (
    MEMBERSHIP_REQUIRED,
    column_values,
    standardise_gaia_table,
)
from tgpcore.catalogs.precision import typical_parallax_error_mas, typical_pm_error_masyr
from tgpcore.gnomonic import from_tangent, to_tangent


def tangent_offsets_arcmin(ra0: float, dec0: float, ra, dec) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic offsets (xi east, eta north) in arcmin of (ra, dec) about (ra0, dec0), degrees
    (:func:`tgpcore.gnomonic.to_tangent` in arcmin)."""
    xi, eta = to_tangent(ra0, dec0, ra, dec)
    return xi * 60.0, eta * 60.0


def offsets_to_radec(ra0: float, dec0: float, xi_arcmin, eta_arcmin) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`tangent_offsets_arcmin`: (ra, dec) in degrees."""
    return from_tangent(ra0, dec0, np.asarray(xi_arcmin, float) / 60.0,
                        np.asarray(eta_arcmin, float) / 60.0)


def sky_centre(ra, dec) -> tuple[float, float]:
    """Mean direction of a set of positions (degrees)."""
    a, d = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    v = np.array([np.mean(np.cos(d) * np.cos(a)), np.mean(np.cos(d) * np.sin(a)),
                  np.mean(np.sin(d))])
    return float(np.degrees(np.arctan2(v[1], v[0])) % 360.0), float(
        np.degrees(np.arctan2(v[2], np.hypot(v[0], v[1]))))


@dataclass
class AstrometricSample:
    """Arrays of one Gaia-like table, ready for the membership model.

    Attributes
    ----------
    table : astropy.table.Table
        The standardised input table (every input row, in order).
    ra0, dec0, radius_arcmin : float
        Cone centre (deg) and radius (arcmin).
    xi, eta, r : ndarray
        Tangent-plane offsets and radius from the centre (arcmin), every row.
    x : ndarray, shape (N, 3)
        (pmra [mas/yr], pmdec [mas/yr], parallax [mas]); NaN where missing.
    cov : ndarray, shape (N, 3, 3)
        Error covariance of ``x``.
    g : ndarray
        G magnitude (NaN where missing).
    has_astrometry : ndarray of bool
        Rows with finite ``x`` and ``cov``.
    errors_estimated : bool
        True if some errors came from :mod:`tgpcore.catalogs.precision`.
    """

    table: Table
    ra0: float
    dec0: float
    radius_arcmin: float
    xi: np.ndarray
    eta: np.ndarray
    r: np.ndarray
    x: np.ndarray
    cov: np.ndarray
    g: np.ndarray
    has_astrometry: np.ndarray
    errors_estimated: bool

    @property
    def n(self) -> int:
        """Number of rows."""
        return len(self.r)


def build_sample(table: Table, centre: tuple[float, float] | None = None,
                 radius_deg: float | None = None, source: str = "table") -> AstrometricSample:
    """Build an :class:`AstrometricSample` from a Gaia-like table.

    Parameters
    ----------
    table : astropy.table.Table
        Gaia-like table (archive names or aliases, see :mod:`tgpcore.catalogs.columns`).
    centre : (float, float), optional
        Cone centre (ra, dec) in degrees; the mean position of the table by default.
    radius_deg : float, optional
        Cone radius in degrees; rows beyond it are kept but flagged by ``r``. By default the
        largest distance of a row from the centre.
    source : str
        Name of the input for error messages.

    Returns
    -------
    AstrometricSample

    Raises
    ------
    tgpcore.catalogs.columns.MissingColumnError
        If a required column is missing.
    """
    t = standardise_gaia_table(table, source=source, required=MEMBERSHIP_REQUIRED)
    ra, dec = column_values(t, "ra", "deg"), column_values(t, "dec", "deg")
    ra0, dec0 = centre if centre is not None else sky_centre(ra, dec)
    xi, eta = tangent_offsets_arcmin(ra0, dec0, ra, dec)
    r = np.hypot(xi, eta)
    radius = float(radius_deg) * 60.0 if radius_deg is not None else float(np.nanmax(r)) * 1.0001
    x = np.column_stack([column_values(t, "pmra", "mas/yr"), column_values(t, "pmdec", "mas/yr"),
                         column_values(t, "parallax", "mas")])
    g = column_values(t, "phot_g_mean_mag", "mag") if "phot_g_mean_mag" in t.colnames \
        else np.full(len(t), np.nan)
    estimated = False
    errs = []
    for name, unit, typical in (("pmra_error", "mas/yr", typical_pm_error_masyr),
                                ("pmdec_error", "mas/yr", typical_pm_error_masyr),
                                ("parallax_error", "mas", typical_parallax_error_mas)):
        if name in t.colnames:
            e = column_values(t, name, unit)
        else:
            e = np.full(len(t), np.nan)
        bad = ~(np.isfinite(e) & (e > 0))
        if bad.any():
            e = e.copy()
            e[bad] = typical(g[bad])
            estimated = estimated or bool((bad & np.all(np.isfinite(x), axis=1)).any())
        errs.append(e)
    cov = np.zeros((len(t), 3, 3))
    for i in range(3):
        cov[:, i, i] = errs[i] ** 2
    for (i, j), name in (((0, 1), "pmra_pmdec_corr"), ((0, 2), "parallax_pmra_corr"),
                         ((1, 2), "parallax_pmdec_corr")):
        if name in t.colnames:
            rho = np.nan_to_num(column_values(t, name), nan=0.0)
            cov[:, i, j] = cov[:, j, i] = rho * errs[i] * errs[j]
    ok = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(cov), axis=(1, 2)) & np.isfinite(r)
    return AstrometricSample(table=t, ra0=float(ra0), dec0=float(dec0), radius_arcmin=radius,
                             xi=xi, eta=eta, r=r, x=x, cov=cov, g=g, has_astrometry=ok,
                             errors_estimated=estimated)
