"""Standard stars measured on their frames, and the reference-catalogue fit."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table

from tgpcore.io.fits import read_ccd
from tgpcore.photcal.fit import CalibrationSolution, TooFewStandardsError, fit_calibration
from tgpcore.photcal.standards import COLOUR_OF, colour, cross_identify, read_standards
from tgpcore.photcal.transforms import guess_transformation, to_johnson
from tgpcore.photometry import flags as F
from tgpcore.photometry.measure import NoStarsError, PhotometryConfig, measure_image


def _wcs(header: fits.Header):
    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = WCS(header)
    return w if w.has_celestial else None


def measure_standards(frame_path: str, standards_path: str, wcs_path: str | None = None,
                      airmass: float | None = None, filt: str | None = None,
                      config: dict[str, Any] | None = None, radius_arcsec: float = 2.0,
                      night: str = "") -> dict[str, Any]:
    """Measure the standard stars on one calibrated frame of a standard field.

    Parameters
    ----------
    frame_path : str
        Calibrated frame (electrons, with UNCERT and MASK); magnitudes are per second.
    standards_path : str
        Standards catalogue (see :func:`tgpcore.photcal.standards.read_standards`).
    wcs_path : str, optional
        FITS header with the frame's WCS (the solve stage's ``.wcs`` file); default: the
        frame's own header.
    airmass, filt : optional
        Default: the frame's ``AIRMASS`` and ``FILTER`` cards.
    config : dict, optional
        :class:`PhotometryConfig` fields.
    radius_arcsec : float
        Cross-identification radius.
    night : str
        Label of the night (for fits per night).

    Returns
    -------
    dict
        ``status``, ``reason`` (when failed), ``frame``, ``filter``, ``airmass``,
        ``n_detected``, ``n_matched`` and ``rows`` (one dict per matched, unflagged
        standard: ``name``, ``m_inst``, ``m_inst_err``, the standard magnitudes and errors).
    """
    ccd = read_ccd(frame_path)
    hdr = ccd.header
    t = float(hdr.get("EXPTIME", 0.0) or 0.0)
    unit = str(ccd.unit or "")
    scale = 1.0 if "/ s" in unit else (1.0 / t if t > 0 else 1.0)
    filt = filt or str(hdr.get("FILTER") or "")
    X = airmass if airmass is not None else hdr.get("AIRMASS")
    base = {"frame": str(frame_path), "filter": filt,
            "airmass": float(X) if X is not None else None, "night": night, "rows": []}
    if X is None:
        return {**base, "status": "failed", "reason": "no airmass for the frame"}
    w = _wcs(fits.getheader(wcs_path) if wcs_path else hdr)
    if w is None:
        return {**base, "status": "failed", "reason": "no WCS for the frame"}
    data = np.asarray(ccd.data, float) * scale
    err = np.asarray(ccd.uncertainty.array, float) * scale if ccd.uncertainty is not None \
        else None
    mask = np.asarray(ccd.mask, bool) if ccd.mask is not None else None
    try:
        tab, summary = measure_image(data, err, mask, PhotometryConfig(**(config or {})))
    except NoStarsError as exc:
        return {**base, "status": "failed", "reason": str(exc)}
    ra, dec = w.all_pix2world(tab["x"], tab["y"], 0)  # SIP distortion included
    tab["ra"], tab["dec"] = ra, dec
    stds = read_standards(standards_path)
    if filt not in stds.colnames:
        return {**base, "status": "failed", "reason": f"standards have no {filt} magnitudes"}
    i_s, i_c, sep = cross_identify(tab, stds, radius_arcsec)
    # Standards are measured exactly as the program stars are (aperture of 1.2 FWHM, sky
    # annulus free of other stars, curve-of-growth correction from the frame's isolated
    # bright stars), so that what the aperture correction misses cancels in the
    # calibration. A large aperture (5 FWHM) was used before: in 2" seeing on a standard
    # field its sky annulus held neighbours' wings and its aperture the neighbours
    # themselves (standards came out 1-2 % faint at high airmass, biasing k(B) by +0.015).
    rows = []
    a, b = COLOUR_OF.get(filt, (filt, filt))
    for s, c, d in zip(i_s, i_c, sep, strict=True):
        fl = int(tab["flags"][s])
        if not F.is_clean([fl], F.BAD)[0] or not np.isfinite(tab["mag_inst"][s]):
            continue
        row = {"name": str(stds["name"][c]), "filter": filt, "airmass": float(X),
               "night": night, "frame": Path(frame_path).name, "sep_arcsec": float(d),
               "m_inst": float(tab["mag_inst"][s]), "m_inst_err": float(tab["mag_err"][s]),
               # the photometric part, and the aperture correction's (common to the frame)
               "m_inst_err_phot": float(1.0857 / tab["snr"][s]),
               "apcorr_err": float(summary["apcorr"]["mag_err"]),
               "m_std": float(stds[filt][c]), "m_std_err": float(stds[f"{filt}_err"][c])
               if f"{filt}_err" in stds.colnames else 0.0,
               "colour": float(stds[a][c] - stds[b][c]) if a in stds.colnames
               and b in stds.colnames else float("nan"), "colour_name": f"{a}-{b}",
               "x": float(tab["x"][s]), "y": float(tab["y"][s])}
        rows.append(row)
    return {**base, "status": "ok", "n_detected": len(tab), "n_matched": len(i_s),
            "rows": rows, "fwhm_px": summary["fwhm_px"], "apcorr": summary["apcorr"]}


def fit_standards(rows: list[dict[str, Any]] | Table, filt: str, min_stars: int = 5,
                  min_airmass_range: float = 0.2, min_distinct: int = 3, **kw: Any
                  ) -> CalibrationSolution:
    """Fit one filter's calibration from standard measurements (see :func:`measure_standards`).

    The extinction coefficient is fitted when the airmass range spans at least
    ``min_airmass_range``; otherwise it is held at ``k_fixed`` (default 0) and the method
    says so. At least ``min_stars`` measurements of at least ``min_distinct`` different
    standards are needed (two stars seen at four airmasses are eight measurements, but
    cannot separate a colour term from a bad standard).
    """
    t = Table(rows=rows) if isinstance(rows, list) and rows else (rows if isinstance(rows, Table)
                                                                  else Table())
    if len(t) == 0 or "filter" not in t.colnames:
        raise TooFewStandardsError(f"{filt}: no standard star measured")
    t = t[t["filter"] == filt]
    if len(t) == 0:
        raise TooFewStandardsError(f"{filt}: no standard star measured")
    usable = np.isfinite(np.asarray(t["m_std"], float)) \
        & np.isfinite(np.asarray(t["m_inst"], float))
    names = set(np.asarray(t["name"])[usable])
    if len(names) < min_distinct:
        raise TooFewStandardsError(
            f"{filt}: {len(names)} different standard star(s) measured "
            f"({int(usable.sum())} measurements), need at least {min_distinct}")
    X = np.asarray(t["airmass"], float)
    fit_k = kw.pop("fit_k", None)
    if fit_k is None:
        fit_k = bool(np.ptp(X) >= min_airmass_range)
    if "apcorr_err" in t.colnames and "m_inst_err_phot" in t.colnames:
        # each frame's aperture correction error is common to its stars
        err = np.hypot(np.asarray(t["m_inst_err_phot"], float),
                       np.asarray(t["m_std_err"], float))
        kw.setdefault("group", np.asarray(t["frame"]).astype(str))
        kw.setdefault("group_err", np.asarray(t["apcorr_err"], float))
    else:
        err = np.hypot(np.asarray(t["m_inst_err"], float), np.asarray(t["m_std_err"], float))
    return fit_calibration(filt, t["m_std"], t["m_inst"], X, t["colour"], err,
                           colour_name=str(t["colour_name"][0]), fit_k=fit_k,
                           min_stars=min_stars,
                           method=f"standard stars ({len(set(t['name']))} stars, "
                                  f"{len(set(t['frame']))} frames)", **kw)


def fit_reference(inst: Table, reference: Table | str, transformation: str | None = None,
                  radius_arcsec: float = 1.5, bands: tuple[str, ...] = ("B", "V"),
                  min_stars: int = 10, max_err: float = 0.05) -> tuple[
                      dict[str, CalibrationSolution], dict[str, str], Table]:
    """Zero point and colour term per band against a reference catalogue of the field.

    Fits ``m_ref - m_inst = ZP' + c colour_ref`` (the extinction folded into ``ZP'`` at the
    stack's airmass) by weighted least squares with outlier rejection.

    Parameters
    ----------
    inst : Table
        Instrumental multi-band catalogue (``ra``, ``dec``, ``<F>_inst``, ``<F>_inst_err``,
        ``<F>_flags``).
    reference : Table or str
        The reference catalogue (or its file).
    transformation : str, optional
        A name in :data:`tgpcore.photcal.transforms.TRANSFORMATIONS`; guessed from the
        columns when None.
    radius_arcsec : float
        Cross-match radius.
    bands : tuple of str
        Bands to calibrate.
    min_stars : int
        Fewest matched stars per band.
    max_err : float
        Only stars with an instrumental error below this enter the fit.

    Returns
    -------
    solutions : dict
        Band -> solution (``k = 0``; ``method`` names the catalogue and transformation).
    failures : dict
        Band -> reason.
    matched : Table
        The matched stars (for QC plots): band, m_ref, m_inst, colour, residual.
    """
    if isinstance(reference, str | Path):
        reference = Table.read(reference) if not str(reference).endswith(".csv") \
            else Table.read(reference, format="ascii.csv")
    transformation = transformation or guess_transformation(reference)
    jt, desc = to_johnson(reference, transformation)
    jt["ra"] = np.asarray(reference["ra"], float)
    jt["dec"] = np.asarray(reference["dec"], float)
    i_inst, i_ref, _ = cross_identify(inst, jt, radius_arcsec)
    sols: dict[str, CalibrationSolution] = {}
    fails: dict[str, str] = {}
    rows = []
    for b in bands:
        if f"{b}_inst" not in inst.colnames:
            continue
        if b not in jt.colnames:
            fails[b] = f"the {transformation} transformation gives no {b}"
            continue
        a, c = COLOUR_OF[b]
        if a not in jt.colnames or c not in jt.colnames:
            col_ref = np.zeros(len(jt))
            fit_c = False
        else:
            col_ref = np.asarray(jt[a], float) - np.asarray(jt[c], float)
            fit_c = True
        mi = np.asarray(inst[f"{b}_inst"].filled(np.nan) if hasattr(inst[f"{b}_inst"], "filled")
                        else inst[f"{b}_inst"], float)[i_inst]
        ei = np.asarray(inst[f"{b}_inst_err"].filled(np.nan)
                        if hasattr(inst[f"{b}_inst_err"], "filled") else inst[f"{b}_inst_err"],
                        float)[i_inst]
        fl = np.asarray(inst[f"{b}_flags"].filled(F.BAD) if hasattr(inst[f"{b}_flags"], "filled")
                        else inst[f"{b}_flags"])[i_inst]
        mr = np.asarray(jt[b], float)[i_ref]
        er = np.asarray(jt[f"{b}_err"], float)[i_ref]
        col = col_ref[i_ref]
        ok = F.is_clean(fl) & np.isfinite(mi) & np.isfinite(mr) & (ei < max_err) \
            & np.isfinite(col)
        try:
            sol = fit_calibration(b, mr[ok], mi[ok], np.zeros(ok.sum()), col[ok],
                                  np.hypot(ei[ok], er[ok]), colour_name=f"{a}-{c}",
                                  fit_k=False, fit_c=fit_c, min_stars=min_stars,
                                  method=f"reference catalogue ({int(ok.sum())} stars; "
                                         f"{desc})")
        except TooFewStandardsError as exc:
            fails[b] = str(exc)
            continue
        sol.extra["transformation"] = transformation
        sols[b] = sol
        res = np.asarray(sol.extra["residual"])
        for k in range(int(ok.sum())):
            rows.append({"band": b, "m_ref": float(mr[ok][k]), "m_inst": float(mi[ok][k]),
                         "colour": float(col[ok][k]), "residual": float(res[k]),
                         "used": bool(sol.extra["used"][k])})
    return sols, fails, Table(rows=rows) if rows else Table()


def standards_colour(table: Table, filt: str) -> np.ndarray:
    """The colour of each standard for ``filt``'s colour term."""
    return colour(table, filt)[0]
