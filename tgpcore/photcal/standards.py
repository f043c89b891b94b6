"""Standard-star catalogues (Landolt's ``nlandolt.dat``, the simulator's ECSV, or any table
with V, B-V, U-B) and their cross-identification with measured stars by position."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from tgpcore.photometry.catalog import match_sky

#: The colour used by each filter's colour term (TGP2020's and Landolt's convention).
COLOUR_OF: dict[str, tuple[str, str]] = {"U": ("U", "B"), "B": ("B", "V"), "V": ("B", "V"),
                                         "R": ("V", "R"), "I": ("V", "I")}


def read_landolt(path: str | Path) -> Table:
    """Read Landolt's catalogue in the IRAF ``nlandolt.dat`` layout.

    Columns of the file: name, RA (h:m:s), Dec (d:m:s), V, B-V, U-B, V-R, R-I, V-I, number of
    observations and nights, and the errors of V, B-V, U-B, V-R, R-I, V-I.

    Returns
    -------
    astropy.table.Table
        ``name``, ``ra``, ``dec`` (deg, J2000), ``U``, ``B``, ``V``, ``R``, ``I`` with
        ``<band>_err`` (errors of colours combined in quadrature), and ``B_V``, ``U_B``.
    """
    names, ra, dec, vals, errs = [], [], [], [], []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) < 17 or line.lstrip().startswith("#"):
            continue
        names.append(parts[0].replace("_", " "))
        ra.append(parts[1])
        dec.append(parts[2])
        vals.append([float(v) for v in parts[3:9]])
        errs.append([float(v) for v in parts[11:17]])
    if not names:
        raise ValueError(f"{path}: no Landolt star read")
    c = SkyCoord(ra, dec, unit=(u.hourangle, u.deg))
    v = np.array(vals)
    e = np.array(errs)
    V, BV, UB, VR, RI, VI = v.T
    eV, eBV, eUB, eVR, eRI, eVI = e.T
    t = Table({"name": names, "ra": c.ra.deg * u.deg, "dec": c.dec.deg * u.deg})
    t["V"], t["V_err"] = V, eV
    t["B"], t["B_err"] = V + BV, np.hypot(eV, eBV)
    t["U"], t["U_err"] = V + BV + UB, np.sqrt(eV**2 + eBV**2 + eUB**2)
    t["R"], t["R_err"] = V - VR, np.hypot(eV, eVR)
    t["I"], t["I_err"] = V - VI, np.hypot(eV, eVI)
    t["B_V"], t["U_B"] = BV, UB
    t.meta["source"] = f"Landolt (1992) via {Path(path).name}"
    return t


def read_standards(path: str | Path) -> Table:
    """Read a standards catalogue: Landolt's ``.dat`` file, or a table (ECSV, FITS, CSV) with
    ``ra``, ``dec``, ``V`` and ``B_V``/``U_B`` (or ``U``, ``B``, ``V`` directly).

    Returns
    -------
    astropy.table.Table
        As :func:`read_landolt` (the bands it can give).
    """
    path = Path(path)
    if path.suffix == ".dat":
        return read_landolt(path)
    t = Table.read(path)
    out = Table({"name": [str(n) for n in t["name"]] if "name" in t.colnames
                 else [f"std{k}" for k in range(len(t))],
                 "ra": np.asarray(t["ra"], float) * u.deg,
                 "dec": np.asarray(t["dec"], float) * u.deg})
    if "V" in t.colnames and "B_V" in t.colnames:
        out["V"] = np.asarray(t["V"], float)
        out["B"] = out["V"] + np.asarray(t["B_V"], float)
        if "U_B" in t.colnames:
            out["U"] = out["B"] + np.asarray(t["U_B"], float)
    for b in ("U", "B", "V", "R", "I"):
        if b in t.colnames and b not in out.colnames:
            out[b] = np.asarray(t[b], float)
    for b in ("U", "B", "V", "R", "I"):
        if b in out.colnames:
            out[f"{b}_err"] = (np.asarray(t[f"{b}_err"], float) if f"{b}_err" in t.colnames
                               else np.full(len(out), 0.0015))
    if "field" in t.colnames:
        out["field"] = t["field"]
    out.meta["source"] = str(path.name)
    return out


def colour(table: Table, filt: str) -> tuple[np.ndarray, str]:
    """The colour of ``filt``'s colour term from standard magnitudes, and its name."""
    a, b = COLOUR_OF[filt]
    return np.asarray(table[a], float) - np.asarray(table[b], float), f"{a}-{b}"


def cross_identify(stars: Table, standards: Table, radius_arcsec: float = 2.0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match measured stars (``ra``, ``dec``) to standards by position.

    Each standard takes its nearest measured star within the radius, and the match must be
    mutual (no measured star is given to two standards).

    Returns
    -------
    i_star, i_std : ndarray of int
        Matched rows.
    sep_arcsec : ndarray
        Their separations.
    """
    ok = np.isfinite(np.asarray(stars["ra"], float))
    if not ok.any() or len(standards) == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    idx = np.flatnonzero(ok)
    i_std, j, sep = match_sky(standards["ra"], standards["dec"],
                              np.asarray(stars["ra"], float)[idx],
                              np.asarray(stars["dec"], float)[idx], radius_arcsec)
    return idx[j], i_std, sep
