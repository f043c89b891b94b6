"""Plate-solving products: solve a stack once, write its WCS, carry it to its frames."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time

from tgpcore.astrometry.cascade import STEPS, SolveRequest, solve
from tgpcore.astrometry.catalog import at_epoch, combine_references, read_reference
from tgpcore.astrometry.matcher import check_wcs
from tgpcore.astrometry.solution import carry_wcs, wcs_header
from tgpcore.io.atomic import atomic_path
from tgpcore.io.checksum import sha256_file
from tgpcore.io.fits import provenance, read_ccd
from tgpcore.registration.stars import detect_stars, windowed_centroids

WCS_PREFIXES = ("CTYPE", "CRVAL", "CRPIX", "CDELT", "CD1_", "CD2_", "PC1_", "PC2_", "CUNIT",
                "A_", "B_", "AP_", "BP_", "LONPOLE", "LATPOLE", "WCSAXES", "RADESYS",
                "EQUINOX", "MJDREF", "CROTA", "ASTRMS", "ASTNSTAR", "ASTDEG")


def _strip_wcs(header: fits.Header) -> None:
    for key in list(header.keys()):
        if key.startswith(WCS_PREFIXES):
            header.remove(key, ignore_missing=True, remove_all=True)


def write_wcs(path: str | Path, wcs_hdr: fits.Header | None, history: str,
              dest: str | Path | None = None) -> None:
    """Replace the WCS of a FITS file's primary header (atomically; other HDUs kept).

    With ``dest`` the file is left as it is and the result written there (a solved stack is a
    new product); ``wcs_hdr`` None then copies the file (its own WCS kept).
    """
    with fits.open(path, memmap=False) as hdul:
        hdul = fits.HDUList([h.copy() for h in hdul])
    if wcs_hdr is not None:
        _strip_wcs(hdul[0].header)
        hdul[0].header.update(wcs_hdr)
        provenance(hdul[0].header, "astrometry", history)
    Path(dest or path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest or path) as tmp:
        hdul.writeto(tmp)


def _epoch(header: fits.Header) -> float | None:
    date = header.get("DATE-OBS")
    if not date:
        return None
    try:
        return float(Time(str(date).replace(" ", "T"), scale="utc").jyear)
    except Exception:  # noqa: BLE001
        return None


def flatten_background(data: np.ndarray, mask: np.ndarray | None, box: int = 128
                       ) -> np.ndarray:
    """The image less a smooth background (photutils ``Background2D``), for detection."""
    from photutils.background import Background2D

    try:
        bkg = Background2D(np.asarray(data, float), min(box, min(data.shape) // 4),
                           mask=mask, filter_size=3)
        return np.asarray(data, float) - bkg.background
    except Exception:  # noqa: BLE001 - a too-masked image keeps its global background
        return np.asarray(data, float)


def detect_for_solving(data: np.ndarray, mask: np.ndarray | None, fwhm_px: float,
                       nsigma: float, max_stars: int = 500, bin_min_px: int = 1536
                       ) -> Table:
    """The brightest stars of an image for plate solving, brightest first.

    Images of at least ``bin_min_px`` on each side (with FWHM >= 2.5 px) are background-
    flattened and searched 2x2-binned, four times fewer pixels; the positions are then
    refined with windowed centroids on the full-resolution image, so the solution's accuracy
    is that of the full image. Smaller images are searched as they are.
    """
    data = np.asarray(data, float)
    ny, nx = data.shape
    if min(ny, nx) < bin_min_px or fwhm_px < 2.5:
        return detect_stars(flatten_background(data, mask), mask, fwhm_px=fwhm_px,
                            nsigma=nsigma, max_stars=max_stars)
    my, mx = ny // 2 * 2, nx // 2 * 2
    bad = ~np.isfinite(data) if mask is None else (np.asarray(mask, bool) | ~np.isfinite(data))
    good = np.where(bad, 0.0, data)[:my, :mx].reshape(my // 2, 2, mx // 2, 2)
    n = (~bad)[:my, :mx].reshape(my // 2, 2, mx // 2, 2).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        binned = good.sum(axis=(1, 3)) / n
    bmask = n == 0
    binned = np.where(bmask, 0.0, binned)
    flat_b = flatten_background(binned, bmask)
    stars = detect_stars(flat_b, bmask, fwhm_px=fwhm_px / 2.0, nsigma=nsigma,
                         max_stars=max_stars, edge_px=4)
    if len(stars) == 0:
        return stars
    # full-resolution image less the (smooth) binned background, for the centroids
    bkg = np.repeat(np.repeat(binned - flat_b, 2, axis=0), 2, axis=1)
    full = np.pad(bkg, ((0, ny - my), (0, nx - mx)), mode="edge")
    x, y, clean = windowed_centroids(data - full, bad, 2.0 * np.asarray(stars["x"]) + 0.5,
                                     2.0 * np.asarray(stars["y"]) + 0.5, fwhm_px)
    return Table({"x": x[clean], "y": y[clean],
                  "flux": 4.0 * np.asarray(stars["flux"], float)[clean]})


def load_references(reference: str | Path | Table | list | tuple | None) -> Table | None:
    """One reference table from a path, a table, or a list of them (combined, the first
    preferred); None for none."""
    if reference is None:
        return None
    items = list(reference) if isinstance(reference, list | tuple) else [reference]
    tables = [read_reference(r) if isinstance(r, str | Path) else r for r in items
              if r is not None]
    if not tables:
        return None
    return combine_references(tables) if len(tables) > 1 else tables[0]


def solve_image(path: str, scale_arcsec: float, hint_ra: float | None, hint_dec: float | None,
                reference: str | Table | None = None, *, steps: tuple[str, ...] = STEPS,
                timeouts: dict[str, float] | None = None, search_radius_arcmin: float = 30.0,
                fwhm_px: float | None = None, write: bool = True,
                options: dict | None = None, rotation_deg: float | None = None,
                parity: int | None = None, detect_sigma: float = 3.0, max_stars: int = 1000,
                plot_path: str | Path | None = None) -> dict[str, Any]:
    """Plate-solve one image (a stack) through the cascade and write the WCS into it.

    Parameters
    ----------
    path : str
        The image (FITS written by tgp: primary = data, MASK extension respected).
    scale_arcsec : float
        Pixel scale from the instrument profile.
    hint_ra, hint_dec : float or None
        Approximate centre, J2000 degrees (the inventory's ``ra_deg``/``dec_deg``).
    reference : str, Table, list of them, or None
        Reference catalogue (file path or table with ra/dec, optional magnitude and proper
        motions; see :func:`~tgpcore.astrometry.catalog.read_reference`). Several are
        combined into one (:func:`~tgpcore.astrometry.catalog.combine_references`, the
        first preferred where they share a star): e.g. a Gaia member list, dense in a
        cluster core, with SDSS around it.
    steps, timeouts :
        See :func:`tgpcore.astrometry.cascade.solve`.
    fwhm_px : float, optional
        Stellar FWHM for detection; default: measured on the image
        (:func:`~tgpcore.registration.stars.estimate_fwhm`; 3.5 px when it cannot be).
    write : bool
        Write the WCS into ``path`` (atomically) when solved.
    options : dict, optional
        Per-solver keyword arguments, e.g. ``{"catalogue": {"n_image": 150}}``.
    detect_sigma, max_stars :
        Detection threshold (background sigma) and the most stars used (brightest first;
        the coarse match uses the brighter ones, the final fit all that match).
    rotation_deg, parity : optional
        The camera's orientation on the sky when the instrument profile knows it (rotation
        of north from +y, counter-clockwise, and -1 for the sky as seen / 1 mirrored): the
        catalogue solver then searches +-10 deg around it instead of every rotation.
    plot_path : path-like, optional
        Write the residuals-against-position figure
        (:func:`tgpcore.plots.astrometry.astrometry_figure`) there when the solution was
        measured against a reference.

    Returns
    -------
    dict
        ``status`` ('ok' or 'failed'), ``solver``, ``n_matched`` (stars the fit kept),
        ``rms_arcsec`` (their RMS against the reference), ``n_rejected`` (matched but
        clipped), ``sip_degree`` (distortion degree; None for a plain TAN),
        ``cv_arcsec`` (leave-one-out RMS per degree tried), ``residual_plot`` (PNG path or
        None), ``fwhm_px`` (used for detection), ``n_stars`` (detected), ``reason``,
        ``attempts`` (one summary per solver tried), ``wcs_header`` (cards as a string), and
        ``checksum`` of the written file.
    """
    from tgpcore.registration.stars import estimate_fwhm

    ccd = read_ccd(path)
    fwhm_source = "given"
    if fwhm_px is None:
        measured, _ = estimate_fwhm(ccd.data, ccd.mask)
        fwhm_px, fwhm_source = (float(measured), "measured") if measured else (3.5, "default")
    stars = detect_for_solving(ccd.data, ccd.mask, fwhm_px, detect_sigma, max_stars=max_stars)
    ref = load_references(reference)
    options = {k: dict(v) for k, v in (options or {}).items()}
    if rotation_deg is not None:
        options.setdefault("catalogue", {}).setdefault(
            "rotation_deg", (rotation_deg - 10.0, rotation_deg + 10.0))
    if parity is not None:
        options.setdefault("catalogue", {}).setdefault("parities", (int(parity),))
    req = SolveRequest(xy=np.column_stack([stars["x"], stars["y"]]), shape=ccd.shape,
                       header=ccd.header, scale_arcsec=scale_arcsec, hint_ra=hint_ra,
                       hint_dec=hint_dec, epoch_jyear=_epoch(ccd.header), image_path=path,
                       reference=ref, search_radius_arcmin=search_radius_arcmin,
                       flux=np.asarray(stars["flux"], float),
                       options=options)
    sol, attempts = solve(req, steps=steps, timeouts=timeouts)
    out: dict[str, Any] = {"path": path, "status": "ok" if sol.ok else "failed",
                           "solver": sol.solver if sol.ok else None,
                           "n_matched": sol.n_matched, "rms_arcsec": sol.rms_arcsec,
                           "n_rejected": sol.n_rejected, "sip_degree": sol.sip_degree,
                           "cv_arcsec": ({str(k): v for k, v in sol.cv_arcsec.items()}
                                         if sol.cv_arcsec else None),
                           "residual_plot": None,
                           "reason": None if sol.ok else "; ".join(
                               f"{a['solver']}: {a['reason']}" for a in attempts),
                           "attempts": attempts, "n_stars": len(stars),
                           "fwhm_px": round(float(fwhm_px), 3), "fwhm_source": fwhm_source}
    if sol.ok and sol.residuals is None and ref is not None and len(ref) and len(stars):
        # a solution from outside (solve-field, nova): measured against the reference too
        try:
            ra, dec = at_epoch(ref, req.epoch_jyear)
            chk = check_wcs(sol.wcs, req.xy, ra, dec, ccd.shape, scale_arcsec)
            sol.residuals, sol.n_matched, sol.rms_arcsec = (chk["residuals"], chk["n_matched"],
                                                            chk["rms_arcsec"])
            out.update(n_matched=sol.n_matched, rms_arcsec=sol.rms_arcsec)
        except Exception as exc:  # noqa: BLE001 - a measurement never loses a solution
            out["check_error"] = f"{type(exc).__name__}: {exc}"
    if sol.ok:
        hdr = wcs_header(sol.wcs)
        if sol.rms_arcsec is not None:
            hdr["ASTRMS"] = (round(float(sol.rms_arcsec), 4), "[arcsec] astrometric RMS")
            hdr["ASTNSTAR"] = (int(sol.n_matched), "stars behind ASTRMS")
        hdr["ASTDEG"] = (int(sol.sip_degree or 1), "distortion degree (1: TAN)")
        out["wcs_header"] = hdr.tostring(sep="\n")
        if write and sol.solver != "header":
            rms = f"{sol.rms_arcsec:.3f}\"" if sol.rms_arcsec is not None else "n/a"
            deg = f", SIP degree {sol.sip_degree}" if sol.sip_degree else ", TAN"
            write_wcs(path, hdr, f"solved by {sol.solver}: {sol.n_matched} stars, RMS {rms}"
                                 f"{deg}")
        out["checksum"] = sha256_file(path)
        if plot_path is not None and sol.residuals:
            from tgpcore.plots.astrometry import astrometry_figure

            try:
                out["residual_plot"] = str(astrometry_figure(
                    sol.residuals, ccd.shape, plot_path, title=Path(path).stem,
                    rms_arcsec=sol.rms_arcsec, sip_degree=sol.sip_degree,
                    scale_arcsec=scale_arcsec))
            except Exception as exc:  # noqa: BLE001 - a figure never loses a solution
                out["plot_error"] = f"{type(exc).__name__}: {exc}"
    return out


def frame_wcs(solution: dict[str, Any], alignment: dict[str, Any], shape: tuple[int, int],
              out_path: str | Path | None = None) -> fits.Header:
    """Carry a stack's solution to one of its frames.

    Parameters
    ----------
    solution : dict
        Result of :func:`solve_image` (needs ``wcs_header``).
    alignment : dict
        The frame's alignment (``matrix``: frame pixel -> stack pixel).
    shape : (ny, nx)
        The frame's shape.
    out_path : path-like, optional
        Write the header there as a ``.wcs`` FITS file (astrometry.net style), atomically.

    Returns
    -------
    astropy.io.fits.Header
        The frame's WCS cards.
    """
    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stack_wcs = WCS(fits.Header.fromstring(solution["wcs_header"], sep="\n"))
    hdr = wcs_header(carry_wcs(stack_wcs, np.asarray(alignment["matrix"]), shape))
    if out_path is not None:
        with atomic_path(out_path) as tmp:
            fits.PrimaryHDU(header=hdr).writeto(tmp)
    return hdr
