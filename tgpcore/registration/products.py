"""Registration products: the reference of a pointing, per-frame alignments, and stacks.

These are the units of work the flow runs as tasks; each reads its inputs from disk and
returns plain data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table

from tgpcore.io.checksum import sha256_file
from tgpcore.io.fits import FLAG_SATURATED, read_ccd, read_flags
from tgpcore.registration.align import (
    Alignment,
    align_frame,
    flux_ratio,
    refine_shifts_static_pattern,
)
from tgpcore.registration.photscale import photometric_scales
from tgpcore.registration.stack import StackMember, stack_frames
from tgpcore.registration.stars import detect_stars, estimate_fwhm


def exposure_classes(exptimes: dict[str, float], ratio: float = 4.0) -> dict[str, str]:
    """Split frames into ``short`` and ``long`` exposures when their lengths differ a lot.

    Parameters
    ----------
    exptimes : dict
        Frame -> exposure time (s).
    ratio : float
        If the longest exposure is more than ``ratio`` times the shortest, frames below the
        geometric mean of the two are ``short``; otherwise all are ``long``.

    Returns
    -------
    dict
        Frame -> ``'short'`` or ``'long'``.
    """
    if not exptimes:
        return {}
    lo, hi = min(exptimes.values()), max(exptimes.values())
    if lo <= 0 or hi / lo <= ratio:
        return dict.fromkeys(exptimes, "long")
    cut = np.sqrt(lo * hi)
    return {k: ("short" if t < cut else "long") for k, t in exptimes.items()}


def detection_mask(path: str, ccd) -> np.ndarray | None:
    """Pixels to ignore when centroiding: the mask less saturated pixels.

    A saturated core is a flat, symmetric plateau, so its centroid stays good; ignoring it
    would drop exactly the bright stars that short exposures share with long ones.
    """
    if ccd.mask is None:
        return None
    flags = read_flags(path)
    if flags is None:
        return ccd.mask
    return ccd.mask & ((flags & FLAG_SATURATED) == 0)


def find_stars(data: np.ndarray, mask: np.ndarray | None, fwhm_px: float = 3.5,
               want: int = 30, thresholds: tuple[float, ...] = (5.0, 4.0, 3.5)) -> Table:
    """Detect stars, lowering the threshold (in background sigma) until ``want`` are found."""
    stars = Table()
    for nsigma in thresholds:
        stars = detect_stars(data, mask, fwhm_px=fwhm_px, nsigma=nsigma)
        if len(stars) >= want:
            break
    return stars


def _stars_payload(stars: Table) -> dict[str, list[float]]:
    return {c: [float(v) for v in stars[c]] for c in ("x", "y", "flux")}


#: Aperture radius (in detection FWHM) of the flux ratios between a frame and its reference:
#: wide, so that a change of seeing between the frames hardly changes the fraction of light
#: inside.
FLUX_RATIO_APERTURE_FWHM = 3.0
#: Detection FWHM used unless the measured one is far from it (see prepare_reference).
NOMINAL_FWHM_PX = 3.5
#: ... "far" meaning more than this factor either way.
FWHM_SWITCH_FACTOR = 1.5


def prepare_reference(paths: list[str], fwhm_px: float | None = None) -> dict[str, Any]:
    """Pick a pointing's reference frame: the one with most usable stars (ties: longest).

    Parameters
    ----------
    paths : list of str
        Calibrated frames of one pointing, all filters.
    fwhm_px : float, optional
        FWHM for detection and centroid windows. By default the FWHM is measured
        (:func:`~tgpcore.registration.stars.estimate_fwhm`) on the pointing's longest
        exposure, and used when it is more than ``FWHM_SWITCH_FACTOR`` away from
        ``NOMINAL_FWHM_PX``: a night far from the usual seeing (defocused, or a fine pixel
        scale, like the real M13 frames at ~12 px) is then detected at the scale of its
        stars. Closer to nominal the nominal window is kept: on the real NGC 2420 V frames
        (measured 4.7 px) it gave smaller alignment residuals (0.14/0.09 against
        0.16/0.10 px) and a better plate solution (0.24" against 0.29" RMS against SDSS).

    Returns
    -------
    dict
        ``path``, ``shape`` (ny, nx), ``stars`` (x, y, flux lists), ``n_stars``, and
        ``fwhm_px`` with ``fwhm_source`` ('given', 'measured' or 'nominal (...)'), and
        ``frame_stars``: every frame's stars (path -> x, y, flux), found once here with
        that FWHM and reused by :func:`align_to_reference` (one detection pass per frame).
    """
    if not paths:
        raise ValueError("no frames to choose a reference from")
    source = "given"
    if fwhm_px is None:
        longest = max(sorted(paths), key=lambda p: float(fits.getheader(p).get("EXPTIME", 0)))
        ccd = read_ccd(longest)
        measured, _ = estimate_fwhm(ccd.data, ccd.mask)
        if measured is None:
            fwhm_px, source = NOMINAL_FWHM_PX, "nominal (none measured)"
        elif 1 / FWHM_SWITCH_FACTOR <= measured / NOMINAL_FWHM_PX <= FWHM_SWITCH_FACTOR:
            fwhm_px, source = NOMINAL_FWHM_PX, f"nominal (measured {measured:.2f} px)"
        else:
            fwhm_px, source = float(measured), "measured"
    best = None
    frame_stars = {}
    for p in sorted(paths):
        ccd = read_ccd(p)
        stars = find_stars(ccd.data, detection_mask(p, ccd), fwhm_px=fwhm_px)
        frame_stars[p] = _stars_payload(stars)
        key = (len(stars), float(ccd.header.get("EXPTIME", 0.0)))
        if best is None or key > best[0]:
            best = (key, p, ccd.shape, stars)
    _, path, shape, stars = best
    return {"path": path, "shape": [int(s) for s in shape], "stars": _stars_payload(stars),
            "n_stars": len(stars), "fwhm_px": float(fwhm_px), "fwhm_source": source,
            "frame_stars": frame_stars}


def align_to_reference(path: str, reference: dict[str, Any], fwhm_px: float | None = None,
                       max_residual_px: float = 0.5) -> dict[str, Any]:
    """Align one calibrated frame to a pointing's reference (see :func:`prepare_reference`).

    ``fwhm_px`` defaults to the reference's (given or measured) FWHM.

    Returns
    -------
    dict
        :class:`~tgpcore.registration.align.Alignment` as plain data, plus ``path``.
    """
    if fwhm_px is None:
        fwhm_px = float(reference.get("fwhm_px") or NOMINAL_FWHM_PX)
    if Path(path).resolve() == Path(reference["path"]).resolve():
        res = Alignment.from_matrix(np.eye(3), "reference", residual_rms_px=0.0,
                                    n_matched=reference["n_stars"],
                                    n_stars=reference["n_stars"])
        try:
            ccd = read_ccd(path)
            xy = np.column_stack([reference["stars"]["x"], reference["stars"]["y"]])
            res.flux_ratio, res.flux_ratio_err, res.n_flux, fl = flux_ratio(
                ccd.data, ccd.mask, ccd.data, ccd.mask, xy, np.eye(3),
                FLUX_RATIO_APERTURE_FWHM * fwhm_px)
            res.star_flux = [float(v) for v in fl]
        except Exception:  # noqa: BLE001 - the fluxes are for QC only
            pass
        return {"path": path, **res.to_dict()}
    try:
        ccd = read_ccd(path)
        ref = read_ccd(reference["path"])
        ref_stars = Table({k: np.asarray(v, float) for k, v in reference["stars"].items()})
        known = (reference.get("frame_stars") or {}).get(path)
        if known is not None and float(fwhm_px) == float(reference.get("fwhm_px") or -1):
            stars = Table({k: np.asarray(known[k], float) for k in ("x", "y", "flux")})
        else:
            stars = find_stars(ccd.data, detection_mask(path, ccd), fwhm_px=fwhm_px)
        res = align_frame(ccd.data, ccd.mask, ref_stars, ref.data, ref.mask, stars=stars,
                          fwhm_px=fwhm_px, max_residual_px=max_residual_px)
        if res.status == "ok":
            res.flux_ratio, res.flux_ratio_err, res.n_flux, fl = flux_ratio(
                ccd.data, ccd.mask, ref.data, ref.mask,
                np.column_stack([ref_stars["x"], ref_stars["y"]]), np.asarray(res.matrix),
                FLUX_RATIO_APERTURE_FWHM * fwhm_px)
            res.star_flux = [float(v) for v in fl]
    except Exception as exc:  # noqa: BLE001 - an unreadable frame is one rejected frame
        res = Alignment(status="rejected", method="none",
                        reason=f"{type(exc).__name__}: {exc}")
    return {"path": path, **res.to_dict()}


def refine_xcorr_alignments(alignments: list[dict[str, Any]], reference: dict[str, Any]
                            ) -> list[dict[str, Any]]:
    """Re-measure the frames of one stack that only cross-correlation could align, with the
    detector's static pattern removed (:func:`~tgpcore.registration.align.
    refine_shifts_static_pattern`). Needs two such frames or more; otherwise, or if the
    frames cannot be read, the alignments come back unchanged.

    The refined frames get ``method='xcorr+pattern'`` and, as ``residual_rms_px``, the
    closure RMS of their pairwise shifts (an empirical error; NaN-free only from three
    frames).
    """
    idx = [i for i, a in enumerate(alignments) if a["status"] == "ok" and a["method"] == "xcorr"]
    if len(idx) < 2:
        return alignments
    fwhm = float(reference.get("fwhm_px") or NOMINAL_FWHM_PX)
    try:
        ccds = [read_ccd(reference["path"])] + [read_ccd(alignments[i]["path"]) for i in idx]
    except Exception:  # noqa: BLE001 - keep the first measurement
        return alignments
    if len({c.shape for c in ccds}) > 1:  # the pattern is per detector pixel: one shape only
        return alignments
    shifts = np.array([(0.0, 0.0)] + [(alignments[i]["matrix"][1][2],
                                        alignments[i]["matrix"][0][2]) for i in idx])
    refined, closure = refine_shifts_static_pattern([c.data for c in ccds],
                                                    [c.mask for c in ccds], shifts,
                                                    smooth_px=fwhm / 2.3548)
    out = [dict(a) for a in alignments]
    for k, (i, (dy, dx)) in enumerate(zip(idx, refined[1:], strict=True), start=1):
        matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])
        res = Alignment.from_matrix(
            matrix, "xcorr+pattern", n_matched=out[i]["n_matched"], n_stars=out[i]["n_stars"],
            residual_rms_px=None if not np.isfinite(closure) else closure,
            correlation=out[i].get("correlation"),
            reason=(f"{out[i]['reason']}; static pattern removed over {len(idx) + 1} frames"
                    f" (first shift {shifts[k][1]:+.2f}, {shifts[k][0]:+.2f} px)"))
        out[i] = {"path": out[i]["path"], **res.to_dict()}
    return out


def make_stack(alignments: list[dict[str, Any]], shape: tuple[int, int], out_path: str,
               label: str = "", **stack_kw: Any) -> dict[str, Any]:
    """Stack the accepted frames of one (pointing, filter, exposure class).

    Parameters
    ----------
    alignments : list of dict
        Results of :func:`align_to_reference` (rejected ones are left out and listed).
    shape : (ny, nx)
        The reference grid.
    out_path : str
        Where the stack goes.
    label : str
        For the provenance line (e.g. the group key).
    **stack_kw
        Passed to :func:`~tgpcore.registration.stack.stack_frames`.

    Returns
    -------
    dict
        ``status`` ('ok' or 'failed'), ``path``, ``checksum``, ``members``, ``rejected``
        (path -> reason), ``frames`` (per-frame statistics with transform and residual) and
        ``qc``.
    """
    ok = [a for a in alignments if a["status"] == "ok"]
    rejected = {a["path"]: a["reason"] for a in alignments if a["status"] != "ok"}
    if not ok:
        return {"status": "failed", "path": None, "members": [], "rejected": rejected,
                "reason": "no frame aligned", "frames": [], "qc": {}}
    exptimes = [float(fits.getheader(a["path"]).get("EXPTIME", 0.0) or 0.0) for a in ok]
    scales, _, scale_notes = photometric_scales([a.get("star_flux") for a in ok], exptimes)
    res = stack_frames([StackMember(a["path"], a["matrix"], flux_scale=float(f))
                        for a, f in zip(ok, scales, strict=True)], tuple(shape),
                       out_path, label=label, **stack_kw)
    by_path = {a["path"]: a for a in ok}
    frames = []
    for f in res.frames:
        a = by_path[f["path"]]
        frames.append({**f, **{k: a[k] for k in ("method", "shift_x_px", "shift_y_px",
                                                 "rotation_deg", "scale", "residual_rms_px",
                                                 "n_matched")},
                       **{k: a.get(k) for k in ("flux_ratio", "flux_ratio_err", "n_flux",
                                                "star_flux")}})
    resid = [a["residual_rms_px"] for a in ok if a["residual_rms_px"] is not None
             and a["method"] != "reference"]
    qc = {**res.qc, "n_rejected": float(len(rejected)),
          "max_residual_px": float(max(resid)) if resid else 0.0,
          "max_flux_scale": float(np.max(scales)) if len(scales) else 1.0}
    return {"status": "ok", "path": res.path, "checksum": sha256_file(res.path),
            "members": [a["path"] for a in ok], "rejected": rejected, "frames": frames,
            "qc": qc}
