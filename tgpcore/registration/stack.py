"""Inverse-variance weighted, sigma-clipped stacking in e-/s with bounded memory.

Each frame is resampled once onto the reference grid and spooled to scratch files (data,
variance, mask) — frames already on the grid are read straight from their FITS files — and
the combine then reads one block of rows of every frame at a time, so the peak memory is set
by ``mem_budget_mb`` and one frame, not by the number of frames.
"""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from tgpcore.io.atomic import atomic_path
from tgpcore.io.fits import (
    FLAG_NOCOVERAGE,
    FLAG_SATURATED,
    provenance,
    read_ccd,
    read_flags,
    write_ccd,
)
from tgpcore.registration.resample import is_identity, sum_variance_factor, warp


@dataclass
class StackMember:
    """One frame to stack: its calibrated file, its transform onto the reference grid, and
    the factor bringing its count rates to the stack's photometric reference
    (:mod:`tgpcore.registration.photscale`; 1 on a photometric night)."""

    path: str
    matrix: Any = field(default_factory=lambda: np.eye(3).tolist())
    exptime_s: float | None = None
    flux_scale: float = 1.0


@dataclass
class TargetGrid:
    """A grid to stack onto other than the reference frame's: its ``shape`` (ny, nx), the
    ``matrix`` taking reference pixels to its pixels (3x3, affine), and optionally the
    ``wcs_header`` cards of the grid (written into the stack's header).

    Each frame is then resampled once, through its own transform composed with ``matrix``,
    straight onto this grid (e.g. a mosaic's), instead of onto the reference grid first.
    """

    shape: tuple[int, int]
    matrix: Any = field(default_factory=lambda: np.eye(3).tolist())
    wcs_header: fits.Header | None = None

    def compose(self, member: StackMember) -> StackMember:
        """``member`` with its transform going straight onto this grid."""
        m = np.asarray(self.matrix, float) @ np.asarray(member.matrix, float)
        return StackMember(member.path, m.tolist(), member.exptime_s, member.flux_scale)


@dataclass
class StackResult:
    """What :func:`stack_frames` produced."""

    path: str
    n_frames: int
    total_exptime_s: float
    frames: list[dict[str, Any]]  # per frame: path, weight, sky, clipped pixels and fraction
    qc: dict[str, float]


def _frame_exptime(ccd: CCDData, given: float | None) -> float:
    t = given if given is not None else ccd.header.get("EXPTIME")
    if t is None or float(t) <= 0:
        raise ValueError("frame has no positive exposure time")
    return float(t)


def _airmass(header: fits.Header) -> float | None:
    try:
        v = float(header.get("AIRMASS"))
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v >= 1.0 else None


def effective_airmass(airmass: list[float | None], weights: np.ndarray) -> float | None:
    """Weighted mean airmass of a stack's frames (the extinction of a weighted mean of
    rates, to first order in k (X - <X>)); None when a frame has no airmass."""
    if not airmass or any(a is None for a in airmass):
        return None
    w = np.asarray(weights, float)
    if not (w.sum() > 0):
        w = np.ones(len(airmass))
    return float(np.sum(w * np.asarray(airmass, float)) / w.sum())


def _direct_layout(path: str, shape: tuple[int, int]) -> dict[str, Any] | None:
    """Byte offsets of the data, UNCERT and MASK arrays of a tgp FITS file, or None when the
    file cannot be read row by row (other layout, scaled integers, missing extensions)."""
    want = {"PRIMARY": ">f4", "UNCERT": ">f4", "MASK": "u1"}
    bitpix = {">f4": -32, "u1": 8}
    out: dict[str, Any] = {}
    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        for i, hdu in enumerate(hdul):
            name = "PRIMARY" if i == 0 else hdu.name
            if name not in want:
                continue
            h = hdu.header
            if (h.get("BITPIX") != bitpix[want[name]] or h.get("NAXIS") != 2
                    or (h.get("NAXIS2"), h.get("NAXIS1")) != tuple(shape)
                    or h.get("BSCALE", 1) != 1 or h.get("BZERO", 0) != 0):
                return None
            out[name] = (int(hdu.fileinfo()["datLoc"]), want[name])
        out["header"] = hdul[0].header.copy()
    return out if all(k in out for k in want) else None


def _prepare(members: list[StackMember], shape: tuple[int, int], work: Path
             ) -> tuple[list[dict[str, Any]], fits.Header]:
    """Describe every frame's source of rows.

    Frames already on the reference grid (identity transform) are read row-block by
    row-block straight from their FITS files; the others are resampled once into e-/s and
    spooled to scratch files.
    """
    info, header = [], None
    ny, nx = shape
    for k, m in enumerate(members):
        layout = _direct_layout(m.path, shape) if is_identity(m.matrix) else None
        if layout is not None:
            hdr = layout.pop("header")
            t = float(m.exptime_s if m.exptime_s is not None else hdr.get("EXPTIME", 0.0))
            if t <= 0:
                raise ValueError(f"{m.path}: frame has no positive exposure time")
            header = header if header is not None else hdr
            src = {"kind": "fits", "path": m.path, "layout": layout, "t": t}
            rows = np.linspace(0, ny - 16, 8).astype(int)
            parts = [_source_rows(src, None, k, r, r + 16, nx) for r in rows]
            d = np.concatenate([p[0] for p in parts])
            v = np.concatenate([p[1] for p in parts])
            good = ~np.concatenate([p[2] for p in parts])
            info.append({"path": m.path, "exptime_s": t, "source": src,
                         "airmass": _airmass(hdr),
                         "sky_e_per_s": float(np.median(d[good])) if good.any() else 0.0,
                         "sky_var": float(np.median(v[good])) if good.any() else np.inf,
                         "sum_var_factor": 1.0,
                         "good_fraction": float(good.mean())})
            continue
        ccd = read_ccd(m.path)
        t = _frame_exptime(ccd, m.exptime_s)
        am = _airmass(ccd.header)
        if header is None:
            header = ccd.header.copy()
        data = ccd.data / t
        var = ((ccd.uncertainty.array / t) ** 2 if ccd.uncertainty is not None
               else np.abs(ccd.data) / t**2)
        mask = ccd.mask if ccd.mask is not None else np.zeros(ccd.shape, bool)
        del ccd
        d, v, msk = warp(data, var, mask, np.asarray(m.matrix, float), shape)
        good = ~msk & np.isfinite(d) & np.isfinite(v) & (v > 0)
        sub = good[::7, ::7]  # a sparse grid is plenty for the sky level and its variance
        sky = float(np.median(d[::7, ::7][sub])) if sub.any() else 0.0
        sky_var = float(np.median(v[::7, ::7][sub])) if sub.any() else np.inf
        for name, arr in (("d", d), ("v", v), ("m", (~good).astype(np.uint8))):
            arr.tofile(work / f"{k}.{name}")
        info.append({"path": m.path, "exptime_s": t, "source": {"kind": "spool"},
                     "airmass": am,
                     "sky_e_per_s": sky, "sky_var": sky_var,
                     "sum_var_factor": sum_variance_factor(m.matrix, shape),
                     "good_fraction": float(good.mean())})
    return info, header


def _read_rows(work: Path, k: int, name: str, dtype, r0: int, r1: int, nx: int) -> np.ndarray:
    item = np.dtype(dtype).itemsize
    a = np.fromfile(work / f"{k}.{name}", dtype=dtype, count=(r1 - r0) * nx,
                    offset=r0 * nx * item)
    return a.reshape(r1 - r0, nx)


def _source_rows(src: dict[str, Any], work: Path | None, k: int, r0: int, r1: int, nx: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows r0:r1 of one frame on the reference grid: data, variance (e-/s) and bad mask."""
    if src["kind"] == "spool":
        d = _read_rows(work, k, "d", np.float32, r0, r1, nx)
        v = _read_rows(work, k, "v", np.float32, r0, r1, nx)
        return d, v, _read_rows(work, k, "m", np.uint8, r0, r1, nx).astype(bool)
    out = []
    for name in ("PRIMARY", "UNCERT", "MASK"):
        off, dt = src["layout"][name]
        item = np.dtype(dt).itemsize
        out.append(np.fromfile(src["path"], dtype=dt, count=(r1 - r0) * nx,
                               offset=off + r0 * nx * item).reshape(r1 - r0, nx))
    t = src["t"]
    d = out[0].astype(np.float32) / np.float32(t)
    v = (out[1].astype(np.float32) / np.float32(t)) ** 2
    bad = out[2].astype(bool) | ~np.isfinite(d) | ~(v > 0)
    return d, v, bad


def masked_median(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Median along axis 0 over the ``valid`` entries (NaN where none); sort-based, ~10x
    faster than :func:`numpy.nanmedian` on stacks of frames."""
    s = np.sort(np.where(valid, a, np.inf), axis=0)
    n = valid.sum(0)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0)[None], 0)[0]
    hi = np.take_along_axis(s, np.minimum(n // 2, len(a) - 1)[None], 0)[0]
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, 0.5 * (lo + hi), np.nan)


def combine_block(d: np.ndarray, v: np.ndarray, bad: np.ndarray, sky: np.ndarray,
                  weights: np.ndarray | None, sigma: float, rel_tol: float,
                  max_iters: int, pair_tol: float | None = 1.0,
                  scale: np.ndarray | None = None, sky_out: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Combine a block of rows of n frames.

    Parameters
    ----------
    d, v : ndarray (n, rows, nx)
        Data and variance in e-/s on the reference grid.
    bad : ndarray of bool (n, rows, nx)
        Masked pixels.
    sky : ndarray (n,)
        Each frame's sky level; the clipping compares frames after removing it.
    weights : ndarray (n,) or None
        Frame weights (inverse sky variance); None weights each pixel by its inverse variance.
    sigma : float
        Clip a pixel deviating from the median of the others by more than ``sigma`` times its
        own standard deviation plus ``rel_tol`` times the median (PSF differences).
        Only where at least three frames are valid.
    max_iters : int
        Clipping iterations.
    pair_tol : float or None
        Where only two frames are valid, there is no median of the others: the higher value
        is clipped when it exceeds the lower by more than ``sigma`` times their combined
        standard deviation plus ``pair_tol`` times the lower (a cosmic ray's remains are
        always positive; 1.0, a doubled pixel, leaves the two seeings' star profiles alone).
        None: no clipping of pairs.
    scale : ndarray (n,), optional
        Each frame's photometric scale: its sky-subtracted values are multiplied by it (and
        its variance by its square) before clipping and combining.
    sky_out : float, optional
        The sky level of the result. The frames are combined sky-subtracted and this level
        added back, so that a pixel where a frame is clipped or masked keeps the same sky
        as its neighbours (a frame with a brighter sky left out of one pixel would otherwise
        leave a hole: the real NGC 2420 V frames' skies differ by 20 %). Default: the mean of
        the frames' scaled skies with the frame weights (equal weights without them).

    Returns
    -------
    mean, variance, used, clipped
        ``used``/``clipped`` are boolean (n, rows, nx).
    """
    used = ~bad
    clipped = np.zeros_like(bad)
    n = d.shape[0]
    s = np.ones(n) if scale is None else np.asarray(scale, float)
    rel = d - sky[:, None, None]
    if scale is not None and np.any(s != 1.0):
        rel = rel * s[:, None, None]
        v = v * (s ** 2)[:, None, None]
    if sky_out is None:
        wk = np.ones(n) if weights is None else np.asarray(weights, float)
        sky_out = float(np.sum(wk * sky * s) / np.sum(wk)) if np.sum(wk) > 0 else 0.0
    for _ in range(max_iters):
        n_ok = used.sum(0)
        if not (n_ok >= 3).any():
            break
        med = masked_median(rel, used)
        dev = np.abs(rel - med)
        new = used & (n_ok >= 3) & (dev > sigma * np.sqrt(v) + rel_tol * np.abs(med))
        if not new.any():
            break
        clipped |= new
        used &= ~new
    pair = used.sum(0) == 2
    if pair_tol is not None and pair.any():
        hi_k = np.argmax(np.where(used, rel, -np.inf), axis=0)[None]
        lo_k = np.argmin(np.where(used, rel, np.inf), axis=0)[None]
        hi, lo = np.take_along_axis(rel, hi_k, 0)[0], np.take_along_axis(rel, lo_k, 0)[0]
        sd = np.sqrt(np.take_along_axis(v, hi_k, 0)[0] + np.take_along_axis(v, lo_k, 0)[0])
        new = pair & (hi - lo > sigma * sd + pair_tol * np.abs(lo))
        if new.any():
            drop = np.zeros_like(used)
            np.put_along_axis(drop, hi_k, new[None], 0)
            clipped |= drop
            used &= ~drop
    w = (np.where(used, 1.0 / np.where(v > 0, v, np.inf), 0.0) if weights is None
         else used * weights[:, None, None])
    sw = w.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(sw > 0, (w * np.where(used, rel, 0.0)).sum(0) / sw + sky_out, 0.0)
        var = np.where(sw > 0, (w**2 * np.where(used, v, 0.0)).sum(0) / sw**2, 0.0)
    return mean, var, used, clipped


def saturated_in_any(members: list[StackMember], shape: tuple[int, int]) -> np.ndarray:
    """Stack pixels that any frame saturated (its FLAGS' saturated bit, resampled).

    The stack's value there comes from the frames that did not saturate, so a star whose core
    saturated in some frames has a profile mixed from different seeings and exposure
    weights: it is not fit for aperture photometry (nor for a curve of growth), and the
    short exposures should measure it.
    """
    out = np.zeros(shape, bool)
    for m in members:
        fl = read_flags(m.path)
        if fl is None or not (fl & FLAG_SATURATED).any():
            continue
        sat = (fl & FLAG_SATURATED) != 0
        if is_identity(m.matrix) and sat.shape == tuple(shape):
            out |= sat
            continue
        # Sparse: each saturated frame pixel marks the (up to) four reference pixels whose
        # bilinear interpolation reads it.
        ys, xs = np.nonzero(sat)
        mat = np.asarray(m.matrix, float)
        rx = mat[0, 0] * xs + mat[0, 1] * ys + mat[0, 2]
        ry = mat[1, 0] * xs + mat[1, 1] * ys + mat[1, 2]
        fx, fy = np.floor(rx).astype(np.int64), np.floor(ry).astype(np.int64)
        for dx in (0, 1):
            for dy in (0, 1):
                cx, cy = fx + dx, fy + dy
                on = (cx >= 0) & (cx < shape[1]) & (cy >= 0) & (cy < shape[0])
                out[cy[on], cx[on]] = True
    return out


def stack_frames(members: list[StackMember], shape: tuple[int, int], out_path: str | Path, *,
                 sigma: float = 5.0, rel_tol: float = 0.1, max_iters: int = 3,
                 weighting: str = "frame", mem_budget_mb: float = 256.0,
                 header: fits.Header | None = None, scratch_dir: str | Path | None = None,
                 label: str = "", n_threads: int = 2,
                 target: TargetGrid | None = None) -> StackResult:
    """Stack calibrated frames onto the reference grid, in e-/s.

    Parameters
    ----------
    members : list of StackMember
        Calibrated frames (electrons, with uncertainty and mask) and their transforms.
    shape : (ny, nx)
        The reference grid.
    out_path : path-like
        The stack's FITS file (written atomically): primary = e-/s, UNCERT, MASK, FLAGS
        (no coverage) and ``EXPMAP`` (seconds of exposure behind each pixel).
    sigma, rel_tol, max_iters :
        Clipping (see :func:`combine_block`).
    weighting : {'frame', 'pixel'}
        ``frame``: each frame weighted by its inverse sky variance (unbiased for stars);
        ``pixel``: each pixel by its own inverse variance.
    mem_budget_mb : float
        Memory for the block of rows of all frames.
    header : astropy.io.fits.Header, optional
        Header of the stack (default: the first frame's).
    scratch_dir : path-like, optional
        Where the resampled frames are spooled (default: beside ``out_path``).
    label : str
        Short description for the provenance line.
    n_threads : int
        Row blocks combined in parallel (numpy releases the GIL); the memory budget is
        shared between them.
    target : TargetGrid, optional
        Stack onto this grid instead (``shape`` is then ignored): every frame is resampled
        once, straight onto it.

    Returns
    -------
    StackResult
    """
    if not members:
        raise ValueError("no frames to stack")
    if weighting not in ("frame", "pixel"):
        raise ValueError(f"weighting must be 'frame' or 'pixel', not {weighting!r}")
    if target is not None:
        members = [target.compose(m) for m in members]
        shape = tuple(int(v) for v in target.shape)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    ny, nx = shape
    work = Path(tempfile.mkdtemp(prefix=".stack-", dir=scratch_dir or out_path.parent))
    try:
        info, first_header = _prepare(members, shape, work)
        n = len(members)
        sky = np.array([i["sky_e_per_s"] for i in info])
        fscale = np.array([float(m.flux_scale or 1.0) for m in members])
        weights = None
        sv = np.array([i["sky_var"] for i in info]) * fscale ** 2
        rho = np.array([i["sum_var_factor"] for i in info])
        if weighting == "frame":
            # the sky variance of a star's aperture, not of one (resampled) pixel
            weights = np.where(np.isfinite(sv) & (sv > 0), 1.0 / (sv * rho), 0.0)
        wk = weights if weights is not None else np.where(np.isfinite(sv) & (sv > 0),
                                                          1.0 / sv, 1.0)
        sky_out = float(np.sum(wk * sky * fscale) / np.sum(wk)) if np.sum(wk) > 0 \
            else float(np.mean(sky * fscale))
        scaled = bool(np.any(fscale != 1.0))
        per_row = n * nx * 60 * max(1, n_threads)  # bytes per row, temporaries included
        rows = int(max(1, min(ny, mem_budget_mb * 2**20 // per_row)))
        mean = np.zeros(shape, np.float32)
        var = np.zeros(shape, np.float32)
        expmap = np.zeros(shape, np.float32)
        t = np.array([i["exptime_s"] for i in info])
        n_used = np.zeros(n, np.int64)
        n_clip = np.zeros(n, np.int64)

        def block(r0: int) -> tuple[np.ndarray, np.ndarray]:
            r1 = min(ny, r0 + rows)
            parts = [_source_rows(info[k]["source"], work, k, r0, r1, nx) for k in range(n)]
            d = np.stack([p[0] for p in parts])
            v = np.stack([p[1] for p in parts])
            b = np.stack([p[2] for p in parts])
            del parts
            m, vv, used, clipped = combine_block(d, v, b, sky, weights, sigma, rel_tol,
                                                 max_iters, scale=fscale if scaled else None,
                                                 sky_out=sky_out)
            mean[r0:r1], var[r0:r1] = m, vv
            expmap[r0:r1] = np.tensordot(t, used, axes=(0, 0))
            return used.sum((1, 2)), clipped.sum((1, 2))

        with ThreadPoolExecutor(max_workers=max(1, n_threads)) as pool:
            for nu, nc in pool.map(block, range(0, ny, rows)):
                n_used += nu
                n_clip += nc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    nocov = expmap <= 0
    saturated = saturated_in_any(members, shape) & ~nocov
    hdr = fits.Header(header if header is not None else first_header)
    if target is not None and target.wcs_header is not None:
        for key in list(hdr.keys()):
            if key.startswith(("CTYPE", "CRVAL", "CRPIX", "CD1_", "CD2_", "PC1_", "PC2_",
                               "CDELT", "A_", "B_", "AP_", "BP_", "CUNIT", "LONPOLE",
                               "LATPOLE", "WCSAXES")):
                hdr.remove(key, ignore_missing=True, remove_all=True)
        hdr.update(target.wcs_header)
    total = float(t.sum())
    hdr["EXPTIME"] = (1.0, "data are a rate: e-/s")
    hdr["TOTEXPT"] = (total, "[s] sum of the stacked exposure times")
    hdr["NCOMBINE"] = (n, "frames stacked")
    hdr["STKCLIP"] = (sigma, "clipping threshold, sigma")
    hdr["STKWGHT"] = (weighting, "weighting of the stack")
    # aperture sums: their variance over the sum of the pixel variances (resampling noise
    # correlation), for the frames' weights in the mean
    wf = weights if weights is not None else np.where(np.isfinite(sv) & (sv > 0), 1 / sv, 0.0)
    den = float(np.sum(wf**2 * sv)) if np.isfinite(sv).all() else 0.0
    hdr["VARSUMF"] = (round(float(np.sum(wf**2 * sv * rho)) / den, 4) if den > 0 else 1.0,
                      "variance of area sums / sum of pixel variances")
    am = [i.get("airmass") for i in info]
    x_eff = effective_airmass(am, weights if weights is not None else t)
    if scaled:
        ref = int(np.argmin(np.abs(fscale - 1.0)))
        hdr["FLXREF"] = (Path(members[ref].path).name[:68], "photometric reference frame")
        for k, f in enumerate(fscale):
            if f != 1.0:
                provenance(hdr, "flxscale", f"{Path(members[k].path).name} x {f:.4f} "
                                            "(count rates of the same stars)")
        if am[ref] is not None:
            # the scaled frames take the reference's transparency, airmass included
            x_eff = float(am[ref])
    if x_eff is not None:
        hdr["AIRMASS"] = (round(x_eff, 5), "effective airmass: frame-weighted mean"
                          if not scaled else "airmass of the photometric reference frame")
        hdr["AIRMMIN"] = (float(min(am)), "lowest airmass of the stacked frames")
        hdr["AIRMMAX"] = (float(max(am)), "highest airmass of the stacked frames")
    elif "AIRMASS" in hdr:
        del hdr["AIRMASS"]
    provenance(hdr, "stack", f"{label + ': ' if label else ''}{n} frames, {total:g} s, "
               f"{weighting}-weighted mean, clip {sigma:g} sigma + {rel_tol:g} x median "
               "(two frames: the higher, above twice the lower)")
    hdr["NSATPIX"] = (int(saturated.sum()), "pixels saturated in at least one frame (masked)")
    flags = (np.where(nocov, FLAG_NOCOVERAGE, 0) | np.where(saturated, FLAG_SATURATED, 0)
             ).astype(np.uint8)
    ccd = CCDData(np.where(nocov, 0.0, mean).astype(np.float32), unit=u.electron / u.s,
                  header=hdr, uncertainty=StdDevUncertainty(np.sqrt(var).astype(np.float32)),
                  mask=nocov | saturated)
    with atomic_path(out_path) as tmp:
        write_ccd(ccd, tmp, flags=flags)
        fits.append(tmp, expmap, fits.Header({"EXTNAME": "EXPMAP", "BUNIT": "s"}))
    frames = []
    for k, i in enumerate(info):
        frames.append({"path": i["path"], "exptime_s": i["exptime_s"],
                       "airmass": i.get("airmass"),
                       "sky_e_per_s": i["sky_e_per_s"], "flux_scale": float(fscale[k]),
                       "weight": float(weights[k] / weights.sum()) if weights is not None
                       and weights.sum() > 0 else None,
                       "good_fraction": i["good_fraction"], "clipped_pixels": int(n_clip[k]),
                       "clipped_fraction": float(n_clip[k] / max(n_used[k] + n_clip[k], 1))})
    cov = ~nocov
    qc = {"n_frames": float(n), "total_exptime_s": total,
          "coverage_fraction": float(cov.mean()),
          "median_sigma_e_per_s": float(np.median(np.sqrt(var[cov]))) if cov.any() else 0.0,
          "clipped_fraction": float(n_clip.sum() / max(n_used.sum() + n_clip.sum(), 1))}
    return StackResult(str(out_path), n, total, frames, qc)


def read_exposure_map(path: str | Path) -> np.ndarray:
    """The EXPMAP extension of a stack written by :func:`stack_frames`."""
    with fits.open(path, memmap=False) as hdul:
        return hdul["EXPMAP"].data.astype(np.float32)
