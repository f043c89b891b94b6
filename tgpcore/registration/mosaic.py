"""Mosaics: the solved pointing stacks of one (cluster, filter) on one common WCS.

The mosaic's grid is the optimal celestial WCS of all the stacks
(:func:`reproject.mosaicking.find_optimal_celestial_wcs`). Each stack is resampled once onto
it through a precomputed pixel map (:func:`pixel_map`: the stack pixel under every mosaic
pixel, computed exactly through both WCSs on a coarse grid and interpolated between its
nodes, the way SWarp and ``reproject``'s pixel maps do), and the one map serves the data, the
weights and the coverage alike (bilinear weights gathered once).

Overlaps are combined with inverse-variance weights: a mosaic pixel is
``sum_i d_i W_i / sum_i W_i`` with ``W_i = interp(1/var_i)`` (0 on masked pixels) and
``d_i = interp(m_i d_i) / interp(m_i)`` (``m_i`` = 1 on unmasked pixels): within a stack the
data are interpolated unweighted, over its unmasked pixels only, so masked pixels neither
pull the data towards zero nor carry weight. Before combining, the
stacks' backgrounds are matched: the additive offset between every two stacks is the median
of their difference where both cover the sky, and the offsets that best explain all of them
(least squares, weighted by the overlap, with a zero pixel-weighted mean, so the mosaic's
mean sky is that of its stacks) are removed. Aperture photometry with a local background is
unchanged by this; the seams between pointings go.

The mosaic carries a weight map (sum of the weights, (e-/s)^-2), a coverage map (number of
stacks behind each pixel) and an uncertainty of ``1/sqrt(weight)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
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

#: Spacing (mosaic pixels) of the nodes where the pixel map is computed through the WCSs;
#: between them it is interpolated (bicubic). A TAN-SIP map is smooth on this scale: the
#: interpolation error is below 1e-4 px on the simulator's distorted frames.
PIXEL_MAP_STEP = 16


def _stack_wcs(header: fits.Header, path: str) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = WCS(header, naxis=2)
    if not w.has_celestial:
        raise ValueError(f"{path}: no celestial WCS (solve the stack first)")
    return w


@dataclass
class PixelMap:
    """Where each mosaic pixel of a box falls on an input image.

    ``box`` = (y0, y1, x0, x1) in the mosaic; ``sx``, ``sy`` the input's 0-based pixel
    coordinates of the box's pixels (float64, shape of the box).
    """

    box: tuple[int, int, int, int]
    sx: np.ndarray
    sy: np.ndarray


def _footprint_box(wcs_out: WCS, shape_out: tuple[int, int], wcs_in: WCS,
                   shape_in: tuple[int, int], pad: int = 2) -> tuple[int, int, int, int] | None:
    """Bounding box, in the mosaic, of an input image's edge mapped through both WCSs."""
    ny, nx = shape_in
    t = np.linspace(0, 1, 33)
    ex = np.concatenate([t * nx, np.full_like(t, nx), t * nx, np.zeros_like(t)]) - 0.5
    ey = np.concatenate([np.zeros_like(t), t * ny, np.full_like(t, ny), t * ny]) - 0.5
    ra, dec = wcs_in.all_pix2world(ex, ey, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ox, oy = wcs_out.all_world2pix(ra, dec, 0)
    ok = np.isfinite(ox) & np.isfinite(oy)
    if not ok.any():
        return None
    y0 = max(int(np.floor(oy[ok].min())) - pad, 0)
    y1 = min(int(np.ceil(oy[ok].max())) + pad + 1, shape_out[0])
    x0 = max(int(np.floor(ox[ok].min())) - pad, 0)
    x1 = min(int(np.ceil(ox[ok].max())) + pad + 1, shape_out[1])
    if y1 <= y0 or x1 <= x0:
        return None
    return y0, y1, x0, x1


def pixel_map(wcs_out: WCS, shape_out: tuple[int, int], wcs_in: WCS,
              shape_in: tuple[int, int], step: int = PIXEL_MAP_STEP) -> PixelMap | None:
    """The input pixel under each mosaic pixel of the input's footprint.

    Exact (``all_pix2world`` then ``all_world2pix``, SIP included) on nodes every ``step``
    mosaic pixels and on the box's last row and column; bicubic between the nodes. None when
    the input does not reach the mosaic.
    """
    from scipy.interpolate import RectBivariateSpline

    box = _footprint_box(wcs_out, shape_out, wcs_in, shape_in)
    if box is None:
        return None
    y0, y1, x0, x1 = box
    gy = np.unique(np.concatenate([np.arange(y0, y1, step), [y1 - 1]])).astype(float)
    gx = np.unique(np.concatenate([np.arange(x0, x1, step), [x1 - 1]])).astype(float)
    if len(gy) < 4 or len(gx) < 4:  # too small for bicubic nodes: exact everywhere
        gy = np.arange(y0, y1, dtype=float)
        gx = np.arange(x0, x1, dtype=float)
    mx, my = np.meshgrid(gx, gy)
    ra, dec = wcs_out.all_pix2world(mx, my, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sx, sy = wcs_in.all_world2pix(ra, dec, 0, quiet=True)
    yy = np.arange(y0, y1, dtype=float)
    xx = np.arange(x0, x1, dtype=float)
    if len(gy) == len(yy) and len(gx) == len(xx):
        return PixelMap(box, sx, sy)
    k = 3 if min(len(gy), len(gx)) >= 4 else 1
    fx = RectBivariateSpline(gy, gx, sx, kx=k, ky=k)(yy, xx)
    fy = RectBivariateSpline(gy, gx, sy, kx=k, ky=k)(yy, xx)
    return PixelMap(box, fx, fy)


def bilinear_gather(pm: PixelMap, shape_in: tuple[int, int], *images: np.ndarray
                    ) -> list[np.ndarray]:
    """Bilinear interpolation of several images of one input through one pixel map.

    The four neighbours' indices and weights are computed once for all ``images``. A mosaic
    pixel whose four neighbours are not all on the input gets 0 from every image (the images
    are weights or weighted data, so 0 means "no contribution").
    """
    ny, nx = shape_in
    sx, sy = pm.sx, pm.sy
    fx0, fy0 = np.floor(sx), np.floor(sy)
    on = (fx0 >= 0) & (fy0 >= 0) & (fx0 <= nx - 1) & (fy0 <= ny - 1) \
        & (sx <= nx - 1) & (sy <= ny - 1)
    ix = np.where(on, fx0, 0).astype(np.intp)
    iy = np.where(on, fy0, 0).astype(np.intp)
    ax = np.where(on, sx - fx0, 0.0).astype(np.float32)
    ay = np.where(on, sy - fy0, 0.0).astype(np.float32)
    ix1 = np.minimum(ix + 1, nx - 1)
    iy1 = np.minimum(iy + 1, ny - 1)
    i00 = iy * nx + ix
    i01 = iy * nx + ix1
    i10 = iy1 * nx + ix
    i11 = iy1 * nx + ix1
    w00 = (1 - ax) * (1 - ay) * on
    w01 = ax * (1 - ay) * on
    w10 = (1 - ax) * ay * on
    w11 = ax * ay * on
    out = []
    for img in images:
        f = np.ascontiguousarray(img, np.float32).ravel()
        out.append(f[i00] * w00 + f[i01] * w01 + f[i10] * w10 + f[i11] * w11)
    return out


def background_offsets(parts: list[dict[str, Any]], min_overlap: int = 500,
                       sample: int = 200_000) -> np.ndarray:
    """Additive background offsets of the resampled stacks (see the module docstring).

    Parameters
    ----------
    parts : list of dict
        Per stack: ``box`` and ``data`` (the stack on the mosaic grid in its box, NaN where it
        has no full weight).

    Returns
    -------
    ndarray
        The offset to subtract from each stack (zero pixel-weighted mean; 0 for a stack that
        overlaps no other).
    """
    n = len(parts)
    if n < 2:
        return np.zeros(n)
    rows, rhs, wts = [], [], []
    for i in range(n):
        for j in range(i + 1, n):
            a, b = parts[i], parts[j]
            y0, y1 = max(a["box"][0], b["box"][0]), min(a["box"][1], b["box"][1])
            x0, x1 = max(a["box"][2], b["box"][2]), min(a["box"][3], b["box"][3])
            if y1 <= y0 or x1 <= x0:
                continue
            da = a["data"][y0 - a["box"][0]:y1 - a["box"][0], x0 - a["box"][2]:x1 - a["box"][2]]
            db = b["data"][y0 - b["box"][0]:y1 - b["box"][0], x0 - b["box"][2]:x1 - b["box"][2]]
            diff = (da - db).ravel()
            diff = diff[np.isfinite(diff)]
            if diff.size < min_overlap:
                continue
            if diff.size > sample:
                diff = diff[:: diff.size // sample + 1]
            r = np.zeros(n)
            r[i], r[j] = 1.0, -1.0
            rows.append(r)
            rhs.append(float(np.median(diff)))
            wts.append(float(np.sqrt(diff.size)))
    if not rows:
        return np.zeros(n)
    npix = np.array([float(np.isfinite(p["data"]).sum()) for p in parts])
    a = np.vstack([np.array(rows) * np.array(wts)[:, None], npix / npix.sum() * 1e3])
    y = np.concatenate([np.array(rhs) * np.array(wts), [0.0]])
    off, *_ = np.linalg.lstsq(a, y, rcond=None)
    linked = np.zeros(n, bool)
    for r in rows:
        linked |= r != 0
    return np.where(linked, off, 0.0)


def make_mosaic(stack_paths: list[str], out_path: str | Path, label: str = "",
                resolution_arcsec: float | None = None,
                match_background: bool = True) -> dict[str, Any]:
    """Resample solved stacks once each onto one WCS and co-add them.

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
    match_background : bool
        Remove the stacks' additive background offsets measured in their overlaps.

    Returns
    -------
    dict
        ``status``, ``path``, ``checksum``, ``shape``, ``members``, ``qc`` (coverage
        fractions, background offsets) and ``background_offsets`` (e-/s per stack).
    """
    from reproject.mosaicking import find_optimal_celestial_wcs

    if not stack_paths:
        raise ValueError("no stacks to mosaic")
    heads = []
    for p in stack_paths:
        with fits.open(p, memmap=False, lazy_load_hdus=True) as hdul:
            h = hdul[0].header.copy()
        heads.append(h)
    specs = [((int(h["NAXIS2"]), int(h["NAXIS1"])), _stack_wcs(h, p))
             for h, p in zip(heads, stack_paths, strict=True)]
    kw = {"resolution": resolution_arcsec * u.arcsec} if resolution_arcsec else {}
    wcs_out, shape_out = find_optimal_celestial_wcs(specs, **kw)
    shape_out = tuple(int(s) for s in shape_out)
    parts: list[dict[str, Any]] = []
    for p, (shape_in, w_in) in zip(stack_paths, specs, strict=True):
        pm = pixel_map(wcs_out, shape_out, w_in, shape_in)
        if pm is None:
            continue
        ccd = read_ccd(p)
        bad = (ccd.mask if ccd.mask is not None else np.zeros(ccd.shape, bool))
        var = (ccd.uncertainty.array.astype(np.float32) ** 2 if ccd.uncertainty is not None
               else np.ones(ccd.shape, np.float32))
        bad = bad | ~np.isfinite(ccd.data) | ~(var > 0)
        wgt = np.where(bad, 0.0, 1.0 / np.where(bad, 1.0, var)).astype(np.float32)
        dsum, cov, den = bilinear_gather(pm, shape_in, np.where(bad, 0.0, ccd.data),
                                         (~bad).astype(np.float32), wgt)
        del ccd, var, wgt, bad
        with np.errstate(invalid="ignore", divide="ignore"):
            # the data unweighted within a stack (a star's core has a larger variance: a
            # weighted interpolation would flatten it), normalised over its unmasked pixels
            d = np.where(cov > 0, dsum / np.where(cov > 0, cov, 1.0), 0.0)
        num = d * den
        data = np.where(cov > 0.999, d, np.nan).astype(np.float32)
        parts.append({"box": pm.box, "num": num, "den": den, "cov": cov, "data": data})
    offsets = background_offsets(parts) if match_background else np.zeros(len(parts))
    num_t = np.zeros(shape_out, np.float64)
    wsum = np.zeros(shape_out, np.float64)
    coverage = np.zeros(shape_out, np.float32)
    for part, off in zip(parts, offsets, strict=True):
        y0, y1, x0, x1 = part["box"]
        num_t[y0:y1, x0:x1] += part["num"] - off * part["den"]
        wsum[y0:y1, x0:x1] += part["den"]
        coverage[y0:y1, x0:x1] += part["cov"]
    del parts
    empty = wsum <= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mosaic = np.where(empty, 0.0, num_t / np.where(empty, 1.0, wsum))
    unc = np.where(empty, 0.0, 1.0 / np.sqrt(np.where(empty, 1.0, wsum)))
    hdr = fits.Header(heads[0])
    for key in list(hdr.keys()):
        if key.startswith(("CTYPE", "CRVAL", "CRPIX", "CD1_", "CD2_", "PC1_", "PC2_", "CDELT",
                           "A_", "B_", "AP_", "BP_", "CUNIT", "LONPOLE", "LATPOLE", "WCSAXES")):
            hdr.remove(key, ignore_missing=True, remove_all=True)
    for key in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BSCALE", "BZERO"):
        hdr.remove(key, ignore_missing=True, remove_all=True)
    hdr.update(wcs_out.to_header())
    hdr["NMOSAIC"] = (len(stack_paths), "stacks in this mosaic")
    hdr["BKGMATCH"] = (bool(match_background), "stack backgrounds matched in overlaps")
    provenance(hdr, "mosaic", f"{label + ': ' if label else ''}{len(stack_paths)} stacks, "
               "one bilinear resampling each (pixel map), inverse-variance weighted mean"
               + (", backgrounds matched" if match_background else ""))
    ccd = CCDData(mosaic.astype(np.float32), unit=u.electron / u.s, header=hdr,
                  uncertainty=StdDevUncertainty(unc.astype(np.float32)), mask=empty)
    flags = np.where(empty, FLAG_NOCOVERAGE, 0).astype(np.uint8)
    cov = np.rint(coverage).astype(np.int16)
    with atomic_path(out_path) as tmp:
        write_ccd(ccd, tmp, flags=flags)
        fits.append(tmp, wsum.astype(np.float32),
                    fits.Header({"EXTNAME": "WEIGHT", "BUNIT": "s2 / electron2"}))
        fits.append(tmp, cov, fits.Header({"EXTNAME": "COVERAGE", "BUNIT": "stacks"}))
    qc = {"n_stacks": float(len(stack_paths)), "coverage_fraction": float((~empty).mean()),
          "overlap_fraction": float((cov >= 2).mean()),
          "max_background_offset_e_per_s": float(np.max(np.abs(offsets))) if len(offsets)
          else 0.0}
    return {"status": "ok", "path": str(out_path), "checksum": sha256_file(out_path),
            "shape": [int(s) for s in shape_out], "members": list(stack_paths), "qc": qc,
            "background_offsets": [float(o) for o in offsets]}
