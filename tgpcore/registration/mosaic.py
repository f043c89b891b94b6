"""Mosaics: the solved pointing stacks of one (cluster, filter) on one common WCS.

Each stack is reprojected (bilinear, :func:`reproject.reproject_interp`) onto the optimal
celestial WCS of all of them (:func:`reproject.mosaicking.find_optimal_celestial_wcs`) and
co-added with inverse-variance weights (:func:`reproject.mosaicking.reproject_and_coadd`).
The mosaic carries a weight map (sum of the weights, (e-/s)^-2), a coverage map (number of
stacks behind each pixel) and an uncertainty of ``1/sqrt(weight)``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.wcs import WCS

from tgpcore.io.atomic import atomic_path
from tgpcore.io.checksum import sha256_file
from tgpcore.io.fits import FLAG_NOCOVERAGE, provenance, read_ccd, write_ccd


def _stack_wcs(ccd: CCDData, path: str) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = WCS(ccd.header, naxis=2)
    if not w.has_celestial:
        raise ValueError(f"{path}: no celestial WCS (solve the stack first)")
    return w


def make_mosaic(stack_paths: list[str], out_path: str | Path, label: str = "",
                resolution_arcsec: float | None = None) -> dict[str, Any]:
    """Reproject and co-add solved stacks onto one WCS.

    Parameters
    ----------
    stack_paths : list of str
        Stacks (e-/s with UNCERT and MASK, and a celestial WCS in the header).
    out_path : path-like
        The mosaic's FITS file: primary (e-/s), UNCERT, MASK, FLAGS (no coverage), ``WEIGHT``
        and ``COVERAGE`` extensions.
    label : str
        For the provenance line (e.g. ``cluster/filter``).
    resolution_arcsec : float, optional
        Pixel scale of the mosaic (default: the finest of the inputs).

    Returns
    -------
    dict
        ``status``, ``path``, ``checksum``, ``shape``, ``members`` and ``qc`` (coverage
        fractions).
    """
    from reproject import reproject_interp
    from reproject.mosaicking import find_optimal_celestial_wcs, reproject_and_coadd

    if not stack_paths:
        raise ValueError("no stacks to mosaic")
    datas, weights, ones, header = [], [], [], None
    for p in stack_paths:
        ccd = read_ccd(p)
        w = _stack_wcs(ccd, p)
        if header is None:
            header = ccd.header.copy()
        bad = (ccd.mask if ccd.mask is not None else np.zeros(ccd.shape, bool))
        var = (ccd.uncertainty.array.astype(float) ** 2 if ccd.uncertainty is not None
               else np.ones(ccd.shape))
        bad = bad | ~np.isfinite(ccd.data) | ~(var > 0)
        datas.append((np.where(bad, 0.0, ccd.data).astype(float), w))
        weights.append(np.where(bad, 0.0, 1.0 / np.where(bad, 1.0, var)))
        ones.append((np.where(bad, 0.0, 1.0), w))
    kw = {"resolution": resolution_arcsec * u.arcsec} if resolution_arcsec else {}
    wcs_out, shape_out = find_optimal_celestial_wcs(datas, **kw)
    mosaic, wsum = reproject_and_coadd(datas, wcs_out, shape_out=shape_out,
                                       input_weights=weights,
                                       reproject_function=reproject_interp,
                                       combine_function="mean")
    coverage, _ = reproject_and_coadd(ones, wcs_out, shape_out=shape_out,
                                      reproject_function=reproject_interp,
                                      combine_function="sum")
    wsum = np.nan_to_num(wsum)
    empty = wsum <= 0
    unc = np.where(empty, 0.0, 1.0 / np.sqrt(np.where(empty, 1.0, wsum)))
    hdr = fits.Header(header)
    for key in list(hdr.keys()):
        if key.startswith(("CTYPE", "CRVAL", "CRPIX", "CD1_", "CD2_", "PC1_", "PC2_", "CDELT",
                           "A_", "B_", "AP_", "BP_", "CUNIT", "LONPOLE", "LATPOLE", "WCSAXES")):
            hdr.remove(key, ignore_missing=True, remove_all=True)
    hdr.update(wcs_out.to_header())
    hdr["NMOSAIC"] = (len(stack_paths), "stacks in this mosaic")
    provenance(hdr, "mosaic", f"{label + ': ' if label else ''}{len(stack_paths)} stacks, "
               "inverse-variance weighted mean (reproject_interp)")
    ccd = CCDData(np.where(empty, 0.0, np.nan_to_num(mosaic)).astype(np.float32),
                  unit=u.electron / u.s, header=hdr,
                  uncertainty=StdDevUncertainty(unc.astype(np.float32)), mask=empty)
    flags = np.where(empty, FLAG_NOCOVERAGE, 0).astype(np.uint8)
    cov = np.rint(np.nan_to_num(coverage)).astype(np.int16)
    with atomic_path(out_path) as tmp:
        write_ccd(ccd, tmp, flags=flags)
        fits.append(tmp, wsum.astype(np.float32),
                    fits.Header({"EXTNAME": "WEIGHT", "BUNIT": "s2 / electron2"}))
        fits.append(tmp, cov, fits.Header({"EXTNAME": "COVERAGE", "BUNIT": "stacks"}))
    qc = {"n_stacks": float(len(stack_paths)), "coverage_fraction": float((~empty).mean()),
          "overlap_fraction": float((cov >= 2).mean())}
    return {"status": "ok", "path": str(out_path), "checksum": sha256_file(out_path),
            "shape": [int(s) for s in shape_out], "members": list(stack_paths), "qc": qc}
