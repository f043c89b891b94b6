"""Catalogues of a stack: photometry of a stack file written as an ECSV table, the merge of
short and long exposures, and the multi-band catalogue of a cluster."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import MaskedColumn, Table, vstack
from astropy.wcs.utils import proj_plane_pixel_scales

from tgpcore.io.checksum import sha256_file
from tgpcore.io.fits import read_ccd
from tgpcore.io.tables import write_table
from tgpcore.photometry import flags as F
from tgpcore.photometry.measure import NoStarsError, PhotometryConfig, measure_image


def _celestial_wcs(header: fits.Header):
    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            w = WCS(header)
        except Exception:  # noqa: BLE001
            return None
    return w if w.has_celestial and "RA" in (w.wcs.ctype[0] or "") else None


def measure_stack(path: str, out_path: str, config: dict[str, Any] | None = None,
                  airmass: float | None = None) -> dict[str, Any]:
    """Photometry of one stack (or one calibrated frame) into an ECSV catalogue.

    Parameters
    ----------
    path : str
        FITS image written by tgp (primary = data, UNCERT, MASK). Stacks are in e-/s; a
        calibrated frame in electrons is divided by its ``EXPTIME`` so that ``mag_inst`` is
        always ``-2.5 log10(e-/s)``.
    out_path : str
        The catalogue (``.ecsv``), written atomically.
    config : dict, optional
        :class:`~tgpcore.photometry.measure.PhotometryConfig` fields.
    airmass : float, optional
        Effective airmass (default: the ``AIRMASS`` card).

    Returns
    -------
    dict
        ``status`` ('ok' or 'failed'), ``reason`` when failed, ``path`` (catalogue),
        ``checksum``, ``n_stars``, ``filter``, ``airmass``, ``fwhm_px``, ``apcorr_mag``,
        ``apcorr_err``, ``qc`` and the measurement ``summary``.
    """
    ccd = read_ccd(path)
    hdr = ccd.header
    config = dict(config or {})
    if "sum_variance_factor" not in config and "VARSUMF" in hdr:
        # a resampled stack: its pixels' noise is correlated
        config["sum_variance_factor"] = float(hdr["VARSUMF"])
    cfg = PhotometryConfig(**config)
    unit = str(ccd.unit) if ccd.unit is not None else ""
    scale = 1.0
    if "/ s" not in unit and "/s" not in unit:
        t = float(hdr.get("EXPTIME", 1.0) or 1.0)
        scale = 1.0 / t if t > 0 else 1.0
    data = np.asarray(ccd.data, float) * scale
    err = (np.asarray(ccd.uncertainty.array, float) * scale
           if ccd.uncertainty is not None else None)
    mask = np.asarray(ccd.mask, bool) if ccd.mask is not None else None
    filt = str(hdr.get("FILTER") or hdr.get("INSFLNAM") or "")
    am = airmass if airmass is not None else hdr.get("AIRMASS")
    base = {"path": None, "image": str(path), "filter": filt,
            "airmass": float(am) if am is not None else None}
    try:
        tab, summary = measure_image(data, err, mask, cfg)
    except NoStarsError as exc:
        return {**base, "status": "failed", "reason": str(exc), "n_stars": 0}
    w = _celestial_wcs(hdr)
    if w is not None:
        ra, dec = w.all_pix2world(tab["x"], tab["y"], 0)  # SIP distortion included
        tab["ra"], tab["dec"] = ra * u.deg, dec * u.deg
    else:
        tab["ra"] = np.full(len(tab), np.nan) * u.deg
        tab["dec"] = np.full(len(tab), np.nan) * u.deg
    tab["mag_inst"].unit = tab["mag_err"].unit = u.mag
    tab.meta.update({"image": str(Path(path).name), "filter": filt, "airmass": base["airmass"],
                     "exptime_total_s": float(hdr.get("TOTEXPT", hdr.get("EXPTIME", 0.0))),
                     "date_obs": str(hdr.get("DATE-OBS", "")), "has_wcs": w is not None,
                     "fwhm_px": summary["fwhm_px"], "apcorr": summary["apcorr"],
                     "psf": summary["psf"], "config": cfg.to_dict(),
                     "mag_inst": "-2.5 log10(flux in e-/s), total flux (aperture-corrected)",
                     "flags": {str(b): n for b, n in F.FLAG_NAMES.items()}})
    write_table(tab, out_path)
    clean = F.is_clean(tab["flags"])
    flux = np.asarray(tab["flux"], float) if "flux" in tab.colnames else np.zeros(0)
    qc = {"n_stars": float(len(tab)), "fwhm_px": summary["fwhm_px"],
          "n_negative_flux": float(np.count_nonzero(np.isfinite(flux) & (flux < 0))),
          "n_pixels_unmasked": float(np.count_nonzero(~mask) if mask is not None
                                     else data.size),
          "sky_e_per_s": float(summary.get("bkg_median", np.nan)),
          "pixel_scale_arcsec": (float(np.mean(proj_plane_pixel_scales(w))) * 3600.0
                                 if w is not None else float("nan")),
          "apcorr_mag": summary["apcorr"]["mag"], "apcorr_err_mag": summary["apcorr"]["mag_err"],
          "n_clean": float(clean.sum()), "n_psf": float(summary["psf"].get("n_fitted", 0)),
          "bkg_rms": summary["bkg_rms"]}
    return {**base, "status": "ok", "path": str(out_path), "checksum": sha256_file(out_path),
            "n_stars": len(tab), "fwhm_px": summary["fwhm_px"],
            "apcorr_mag": summary["apcorr"]["mag"], "apcorr_err": summary["apcorr"]["mag_err"],
            "has_wcs": w is not None, "qc": qc, "summary": summary}


def _match_xy(x1, y1, x2, y2, radius):
    """Mutual nearest neighbours within ``radius``: index arrays (i1, i2)."""
    from scipy.spatial import cKDTree

    if len(x1) == 0 or len(x2) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    t2 = cKDTree(np.column_stack([x2, y2]))
    d12, j12 = t2.query(np.column_stack([x1, y1]))
    t1 = cKDTree(np.column_stack([x1, y1]))
    _, j21 = t1.query(np.column_stack([x2, y2]))
    i1 = np.flatnonzero((d12 <= radius) & (j21[np.minimum(j12, len(x2) - 1)] == np.arange(len(x1))))
    return i1, j12[i1]


def match_sky(ra1, dec1, ra2, dec2, radius_arcsec: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mutual nearest neighbours on the sky within ``radius_arcsec`` (degrees in).

    Each position of the first list takes its nearest of the second; the pair is kept when it
    is within the radius and the first position is also the nearest to the second.

    Returns
    -------
    i1, i2 : ndarray of int
        Matched indices into the first and the second list.
    sep_arcsec : ndarray
        Their separations.
    """
    from astropy.coordinates import SkyCoord

    c1 = SkyCoord(np.asarray(ra1, float), np.asarray(dec1, float), unit="deg")
    c2 = SkyCoord(np.asarray(ra2, float), np.asarray(dec2, float), unit="deg")
    j, sep, _ = c1.match_to_catalog_sky(c2)
    k, _, _ = c2.match_to_catalog_sky(c1)
    ok = (sep.arcsec <= radius_arcsec) & (k[j] == np.arange(len(c1)))
    return np.flatnonzero(ok), j[ok], sep.arcsec[ok]


def merge_short_long(long: Table | None, short: Table | None, radius_px: float = 1.5,
                     min_snr: float = 20.0) -> tuple[Table, dict[str, Any]]:
    """Merge the photometry of the short and long stacks of one pointing and filter.

    Both stacks share the pointing's pixel grid. The offset ``long - short`` is measured
    (weighted median) on stars good in both (clean, S/N > ``min_snr``) and added to the short
    magnitudes; stars saturated (or otherwise bad) in the long stack, or missing from it, take
    their magnitude from the short one (flag ``FROM_SHORT``), with the offset's error added.

    Returns
    -------
    table : Table
        The long-stack rows (or short ones) with the replaced values.
    info : dict
        ``offset_mag``, ``offset_err``, ``n_common``, ``n_from_short``.
    """
    if long is None or short is None:
        t = (long if long is not None else short).copy()
        if long is None:
            t["flags"] = np.asarray(t["flags"]) | F.FROM_SHORT
        return t, {"offset_mag": None, "offset_err": None, "n_common": 0,
                   "n_from_short": int(len(t)) if long is None else 0}
    il, js = _match_xy(np.asarray(long["x"]), np.asarray(long["y"]), np.asarray(short["x"]),
                       np.asarray(short["y"]), radius_px)
    good = (F.is_clean(long["flags"][il]) & F.is_clean(short["flags"][js])
            & (np.asarray(long["snr"])[il] > min_snr) & (np.asarray(short["snr"])[js] > min_snr))
    dm = np.asarray(long["mag_inst"])[il] - np.asarray(short["mag_inst"])[js]
    if good.sum() >= 3:
        d = dm[good]
        off = float(np.median(d))
        off_err = float(1.2533 * np.std(d, ddof=1) / np.sqrt(len(d)))
    else:
        off, off_err = 0.0, 0.05
    out = long.copy()
    bad_long = np.zeros(len(out), bool)
    bad_long[:] = (np.asarray(out["flags"]) & (F.SATURATED | F.NEAR_MASK)) != 0
    take = bad_long[il] & F.is_clean(short["flags"][js], F.SATURATED | F.NEAR_MASK | F.EDGE)
    rows_l, rows_s = il[take], js[take]
    for c in ("mag_inst", "mag_err", "flux", "flux_err", "snr"):
        if c not in out.colnames:
            continue
        col = np.asarray(out[c], float).copy()
        src = np.asarray(short[c], float)[rows_s]
        if c == "mag_inst":
            src = src + off
        elif c == "mag_err":
            src = np.hypot(src, off_err)
        elif c in ("flux", "flux_err"):
            src = src * 10 ** (-0.4 * off)
        col[rows_l] = src
        out[c] = col
    fl = np.asarray(out["flags"]).copy()
    fl[rows_l] = (np.asarray(short["flags"])[rows_s] | F.FROM_SHORT)
    out["flags"] = fl
    # Stars only in the short stack (e.g. saturated beyond detection in the long one).
    only_short = np.setdiff1d(np.arange(len(short)), js)
    extra = short[only_short].copy()
    if len(extra):
        extra["mag_inst"] = np.asarray(extra["mag_inst"], float) + off
        extra["mag_err"] = np.hypot(np.asarray(extra["mag_err"], float), off_err)
        extra["flags"] = np.asarray(extra["flags"]) | F.FROM_SHORT
        bright = np.asarray(extra["snr"], float) > min_snr
        extra = extra[bright]
        if len(extra):
            cols = [c for c in out.colnames if c in extra.colnames]
            out = vstack([out[cols], extra[cols]], metadata_conflicts="silent")
    out.meta = dict(long.meta)
    out.meta["short_long"] = {"offset_mag": off, "offset_err": off_err,
                              "n_common": int(good.sum()),
                              "n_from_short": int(len(rows_l) + len(extra))}
    return out, dict(out.meta["short_long"])


def merge_bands(tables: dict[str, Table], radius_arcsec: float = 1.0,
                use_pixels: bool = False, radius_px: float = 1.5) -> Table:
    """Cross-match per-band catalogues into one multi-band catalogue.

    Parameters
    ----------
    tables : dict
        Filter -> catalogue (``ra``, ``dec`` or ``x``, ``y``, and ``mag``/``mag_err``/
        ``flags`` columns; calibrated ``mag`` or instrumental ``mag_inst``).
    radius_arcsec : float
        Match radius on the sky (SkyCoord).
    use_pixels : bool
        Match by pixel position instead (the bands of one pointing share a grid; for
        stacks without WCS).
    radius_px : float
        Pixel match radius.

    Returns
    -------
    Table
        ``ra``, ``dec``, ``x``, ``y`` and per band ``<F>``, ``<F>_err`` (``<F>_inst``,
        ``<F>_inst_err`` for instrumental inputs), ``<F>_flags``, ``<F>_snr`` and
        ``<F>_airmass`` (when the inputs have an ``airmass`` column), masked where the star
        is missing from the band.
    """
    bands = sorted(tables, key=lambda f: -len(tables[f]))
    magcol = "mag" if all("mag" in t.colnames for t in tables.values()) else "mag_inst"
    sfx = "" if magcol == "mag" else "_inst"
    rows: dict[str, list] = {"ra": [], "dec": [], "x": [], "y": []}
    per: dict[str, dict[int, int]] = {b: {} for b in bands}
    for b in bands:
        t = tables[b]
        n0 = len(rows["ra"])
        if n0 == 0:
            idx_new = np.arange(len(t))
        else:
            if use_pixels:
                i_t, i_c = _match_xy(np.asarray(t["x"]), np.asarray(t["y"]),
                                     np.asarray(rows["x"]), np.asarray(rows["y"]), radius_px)
            else:
                i_t, i_c, _ = match_sky(t["ra"], t["dec"], rows["ra"], rows["dec"],
                                        radius_arcsec)
            for a, c in zip(i_t, i_c, strict=True):
                per[b][int(c)] = int(a)
            idx_new = np.setdiff1d(np.arange(len(t)), i_t)
        for a in idx_new:
            per[b][len(rows["ra"])] = int(a)
            for c in ("ra", "dec", "x", "y"):
                rows[c].append(float(t[c][a]) if c in t.colnames else np.nan)
    n = len(rows["ra"])
    out = Table({"ra": np.asarray(rows["ra"], float) * u.deg,
                 "dec": np.asarray(rows["dec"], float) * u.deg,
                 "x": np.asarray(rows["x"], float), "y": np.asarray(rows["y"], float)})
    for b in sorted(bands, key=lambda f: "UBVRI".find(f) if f in "UBVRI" else 9):
        t = tables[b]
        m = np.full(n, np.nan)
        e = np.full(n, np.nan)
        s = np.full(n, np.nan)
        fl = np.zeros(n, np.int64)
        am = np.full(n, np.nan)
        have = np.zeros(n, bool)
        for c, a in per[b].items():
            m[c] = t[magcol][a]
            e[c] = t["mag_err"][a]
            s[c] = t["snr"][a] if "snr" in t.colnames else np.nan
            am[c] = t["airmass"][a] if "airmass" in t.colnames else np.nan
            fl[c] = t["flags"][a]
            have[c] = True
        out[f"{b}{sfx}"] = MaskedColumn(m, mask=~have, unit=u.mag)
        out[f"{b}{sfx}_err"] = MaskedColumn(e, mask=~have, unit=u.mag)
        out[f"{b}_snr"] = MaskedColumn(s, mask=~have)
        out[f"{b}_flags"] = MaskedColumn(fl, mask=~have)
        if np.isfinite(am).any():
            out[f"{b}_airmass"] = MaskedColumn(am, mask=~have)
    out.meta["bands"] = list(tables)
    out.meta["match"] = (f"pixel, {radius_px:g} px" if use_pixels
                         else f"SkyCoord, {radius_arcsec:g} arcsec, mutual nearest")
    return out


def combine_pointings(tables: list[Table], radius_arcsec: float = 1.0) -> Table:
    """One band's catalogue of a cluster from the catalogues of its pointings.

    A star seen on several (overlapping) pointings keeps the measurement with the smallest
    ``mag_err``; ``n_pointings`` counts the pointings it was found on. Tables without sky
    positions cannot be combined: the first one is returned alone.
    """
    from astropy.coordinates import SkyCoord

    tables = [t for t in tables if t is not None and len(t)]
    if not tables:
        raise ValueError("no catalogue to combine")
    if len(tables) == 1 or not all(np.isfinite(np.asarray(t["ra"], float)).all()
                                   for t in tables):
        out = tables[0].copy()
        out["n_pointings"] = np.ones(len(out), int)
        return out
    out = tables[0].copy()
    out["n_pointings"] = np.ones(len(out), int)
    for t in tables[1:]:
        t = t.copy()
        t["n_pointings"] = np.ones(len(t), int)
        c_t = SkyCoord(np.asarray(t["ra"], float), np.asarray(t["dec"], float), unit="deg")
        c_o = SkyCoord(np.asarray(out["ra"], float), np.asarray(out["dec"], float), unit="deg")
        j, sep, _ = c_t.match_to_catalog_sky(c_o)
        hit = sep.arcsec <= radius_arcsec
        npnt = np.asarray(out["n_pointings"]).copy()
        replace = []
        for a in np.flatnonzero(hit):
            npnt[j[a]] += 1
            if float(t["mag_err"][a]) < float(out["mag_err"][j[a]]):
                replace.append((a, j[a]))
        out["n_pointings"] = npnt
        for a, c in replace:
            n_keep = out["n_pointings"][c]
            out[c] = t[a]
            out["n_pointings"][c] = n_keep
        cols = out.colnames
        out = vstack([out, t[~hit][cols]], metadata_conflicts="silent")
    return out


def build_cluster_catalogue(stacks: dict[str, dict[str, Any]], out_path: str,
                            radius_arcsec: float = 1.0) -> dict[str, Any]:
    """The instrumental multi-band catalogue of one cluster from its stacks' catalogues.

    Parameters
    ----------
    stacks : dict
        Stack id ``cluster/pointing/filter/class`` -> result of :func:`measure_stack` (needs
        ``status``, ``path``, ``filter``, ``airmass``).
    out_path : str
        The catalogue (ECSV), written atomically.
    radius_arcsec : float
        Match radius between pointings and bands.

    Returns
    -------
    dict
        ``path``, ``checksum``, ``n_stars``, ``bands``, ``short_long`` (per pointing and
        filter: offset, error, counts), ``airmass`` (per band: the values of its stacks).
    """
    groups: dict[tuple[str, str], dict[str, Table]] = {}
    airmass: dict[str, list[float]] = {}
    for sid, res in sorted(stacks.items()):
        if res.get("status") != "ok":
            continue
        _, pointing, filt, cls = sid.split("/")
        t = Table.read(res["path"], format="ascii.ecsv")
        am = res.get("airmass")
        t["airmass"] = np.full(len(t), float(am) if am is not None else np.nan)
        groups.setdefault((pointing, filt), {})[cls] = t
        if am is not None:
            airmass.setdefault(filt, []).append(float(am))
    if not groups:
        raise ValueError("no stack catalogue to build the cluster catalogue from")
    short_long: dict[str, Any] = {}
    by_band: dict[str, list[Table]] = {}
    for (pointing, filt), cls in sorted(groups.items()):
        merged, info = merge_short_long(cls.get("long"), cls.get("short"))
        short_long[f"{pointing}/{filt}"] = info
        merged["pointing"] = np.full(len(merged), pointing)
        by_band.setdefault(filt, []).append(merged)
    have_wcs = all(np.isfinite(np.asarray(t["ra"], float)).any()
                   for ts in by_band.values() for t in ts)
    if have_wcs:
        bands = {f: combine_pointings(ts, radius_arcsec) for f, ts in by_band.items()}
        cat = merge_bands(bands, radius_arcsec=radius_arcsec)
    else:
        # without WCS only one pointing can be merged (its bands share one pixel grid)
        first = sorted({p for p, _ in groups})[0]
        bands = {f: [t for t in ts if t["pointing"][0] == first][0]
                 for f, ts in by_band.items() if any(t["pointing"][0] == first for t in ts)}
        cat = merge_bands(bands, use_pixels=True)
    cat.meta.update({"short_long": short_long, "airmass": airmass,
                     "stacks": sorted(k for k, v in stacks.items() if v.get("status") == "ok")})
    write_table(cat, out_path)
    return {"path": str(out_path), "checksum": sha256_file(out_path), "n_stars": len(cat),
            "bands": sorted(bands), "short_long": short_long, "airmass": airmass}
