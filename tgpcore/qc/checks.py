"""The checks behind the alarms: a stage's figures compared with :class:`AlarmThresholds`.

Each function takes plain figures (what the stages already measure) and returns a list of
:class:`~tgpcore.qc.alarms.Alarm`; none reads or writes the run database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tgpcore.qc.alarms import Alarm, AlarmThresholds

DEFAULT = AlarmThresholds()
#: Nominal extinction coefficients (mag/airmass) used only to compare frames of one filter
#: taken at slightly different airmasses (a good site: Burki et al. 1995).
NOMINAL_EXTINCTION = {"U": 0.50, "B": 0.25, "V": 0.15, "R": 0.10, "I": 0.06}
#: How far a night's coefficients stray from the nominal ones (mag/airmass; the spread of
#: nights and sites, Burki et al. 1995): frames at airmasses dX apart may differ by this x dX
#: on a photometric night, and a jump must exceed it too before it is called clouds.
EXTINCTION_SPREAD = {"U": 0.15, "B": 0.08, "V": 0.06, "R": 0.05, "I": 0.05}


@dataclass
class FrameFigures:
    """What the calibration stage knows about one calibrated frame."""

    name: str
    filter: str
    group: str
    exptime_s: float
    masked_fraction: float
    cosmic_ray_pixels: float
    n_pixels: int
    sky_e_per_s: float
    flags_path: str | None = None
    airmass: float | None = None
    kind: str = "science"


def frame_alarms(f: FrameFigures, th: AlarmThresholds = DEFAULT) -> list[Alarm]:
    """Masked fraction and cosmic-ray pixels of one calibrated frame."""
    out = []
    if f.masked_fraction > th.masked_fraction:
        out.append(Alarm("masked_fraction", "calibrate", f.name, f.masked_fraction,
                         th.masked_fraction,
                         f"{f.masked_fraction:.1%} of the pixels are masked"))
    frac = f.cosmic_ray_pixels / max(f.n_pixels, 1)
    if frac > th.cosmic_pixel_fraction:
        out.append(Alarm("cosmic_ray_rate", "calibrate", f.name, frac, th.cosmic_pixel_fraction,
                         f"{int(f.cosmic_ray_pixels)} cosmic-ray pixels ({frac:.2%} of the "
                         f"frame) in {f.exptime_s:g} s"))
    return out


def night_calibration_alarms(frames: Sequence[FrameFigures], th: AlarmThresholds = DEFAULT,
                             read_flags=None) -> list[Alarm]:
    """Alarms over all calibrated frames of a night.

    - per frame: :func:`frame_alarms`;
    - cosmic-ray pixels that do not grow with exposure time (the shortest frames against the
      longest, when they differ by ``cosmic_min_exposure_ratio`` or more);
    - the same pixels flagged as cosmic rays in most frames (needs ``read_flags(path)`` to
      return a frame's bit flags, and frames of one shape);
    - the sky of one group and filter changing by more than ``sky_change``.
    """
    out: list[Alarm] = []
    for f in frames:
        out += frame_alarms(f, th)
    sci = [f for f in frames if f.exptime_s > 0]
    if len(sci) >= 2:
        t = np.array([f.exptime_s for f in sci])
        rate = np.array([f.cosmic_ray_pixels for f in sci])
        short, long_ = t <= t.min() * 1.5, t >= t.max() / 1.5
        if t.max() / t.min() >= th.cosmic_min_exposure_ratio and short.any() and long_.any():
            s, lg = float(np.median(rate[short])), float(np.median(rate[long_]))
            if lg > 0 and s / lg > th.cosmic_short_over_long and s > 20:
                out.append(Alarm(
                    "cosmic_ray_scaling", "calibrate", "night", s / lg,
                    th.cosmic_short_over_long,
                    f"the {t.min():g} s frames carry {s:.0f} cosmic-ray pixels (median), the "
                    f"{t.max():g} s frames {lg:.0f}: the counts do not grow with exposure"))
    if read_flags is not None:
        out += _repeated_cosmic_alarm(sci, th, read_flags)
    groups: dict[tuple[str, str], list[FrameFigures]] = {}
    for f in sci:
        # the science fields only: standard fields are visited at very different airmasses
        if f.kind == "science" and np.isfinite(f.sky_e_per_s) and f.sky_e_per_s > 0:
            groups.setdefault((f.group, f.filter), []).append(f)
    for (group, filt), fs in sorted(groups.items()):
        if len(fs) < 2:
            continue
        sky = np.array([f.sky_e_per_s for f in fs])
        # the sky brightens about in proportion to the airmass (van Rhijn)
        x = np.array([f.airmass if f.airmass and np.isfinite(f.airmass) else 1.0 for f in fs])
        norm = sky / x
        change = float(norm.max() / norm.min() - 1.0)
        if change > th.sky_change:
            out.append(Alarm("sky_change", "calibrate", f"{group} {filt}", change, th.sky_change,
                             f"the sky in {filt} went from {sky.min():.1f} to {sky.max():.1f} "
                             f"e-/s/px ({change:+.0%} at equal airmass) across {len(fs)} "
                             "frames"))
    return out


def _repeated_cosmic_alarm(frames: Sequence[FrameFigures], th: AlarmThresholds,
                           read_flags) -> list[Alarm]:
    from tgpcore.io.fits import FLAG_COSMIC

    paths = [f.flags_path for f in frames if f.flags_path]
    if len(paths) < 3:
        return []
    count = None
    for p in paths:
        flags = read_flags(p)
        if flags is None:
            continue
        hit = (flags & FLAG_COSMIC) > 0
        if count is None:
            count = hit.astype(np.int32)
        elif count.shape == hit.shape:
            count += hit
    if count is None:
        return []
    need = max(3, int(np.ceil(0.5 * len(paths))))
    n = int(np.count_nonzero(count >= need))
    frac = n / count.size
    if frac <= th.repeated_cosmic_fraction:
        return []
    return [Alarm("repeated_cosmic_pixels", "calibrate", "night", frac,
                  th.repeated_cosmic_fraction,
                  f"{n} pixels are flagged as cosmic rays in {need} or more of "
                  f"{len(paths)} frames: hot pixels or a master's defect, not cosmic rays")]


def transparency_alarms(frames: Iterable[Mapping], th: AlarmThresholds = DEFAULT,
                        stage: str = "register") -> list[Alarm]:
    """Zero-point jumps between frames of one group and filter, from the count rates of the
    same stars.

    Each frame needs ``name``, ``group``, ``filter``, ``exptime_s``, ``airmass`` (or None)
    and ``star_flux``: the flux of the group's reference stars in it (one list per group, in
    the same order; NaN where not measured). Within a group and filter, each frame is
    compared star by star with the frame that measured most stars: the median of
    2.5 log10 of the count-rate ratios, corrected to equal airmass with a nominal extinction
    coefficient (stars of every colour cancel, being the same stars in the same filter).
    A jump must exceed the threshold plus what the night's own extinction may differ from the
    nominal one over the frames' airmass difference (``EXTINCTION_SPREAD``): a standard field
    visited from airmass 1.2 to 2.3 in U may differ by 0.16 mag on a clear night.
    """
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for f in frames:
        if f.get("star_flux") and f.get("exptime_s"):
            groups.setdefault((str(f["group"]), str(f["filter"])), []).append(f)
    out = []
    for (group, filt), fs in sorted(groups.items()):
        if len(fs) < 2:
            continue
        k = NOMINAL_EXTINCTION.get(filt, 0.15)
        flux = [np.asarray(f["star_flux"], float) for f in fs]
        if len({len(x) for x in flux}) > 1:
            continue
        rates = [x / float(f["exptime_s"]) for x, f in zip(flux, fs, strict=True)]
        ref = int(np.argmax([np.isfinite(r).sum() for r in rates]))
        zp, err = [], []
        for r, f in zip(rates, fs, strict=True):
            ok = np.isfinite(r) & np.isfinite(rates[ref]) & (r > 0) & (rates[ref] > 0)
            if ok.sum() < 3:
                zp.append(np.nan)
                err.append(np.nan)
                continue
            d = 2.5 * np.log10(r[ok] / rates[ref][ok])
            med = float(np.median(d))
            zp.append(med + k * (float(f.get("airmass") or 0.0)
                                 - float(fs[ref].get("airmass") or 0.0)))
            err.append(float(1.2533 * 1.4826 * np.median(np.abs(d - med)) / np.sqrt(ok.sum())))
        zp_a, err_a = np.array(zp), np.array(err)
        good = np.isfinite(zp_a)
        if good.sum() < 2:
            continue
        idx = np.flatnonzero(good)
        i, j = idx[np.argmax(zp_a[good])], idx[np.argmin(zp_a[good])]
        jump = float(zp_a[i] - zp_a[j])
        sig = float(np.hypot(err_a[i], err_a[j])) or 1e-3
        dx = abs(float(fs[i].get("airmass") or 0.0) - float(fs[j].get("airmass") or 0.0))
        allowed = th.transparency_mag + EXTINCTION_SPREAD.get(filt, 0.06) * dx
        if jump > allowed and jump > th.transparency_sigma * sig:
            out.append(Alarm(
                "non_photometric", stage, f"{group} {filt}", jump, allowed,
                f"the same stars give {jump:.2f} ± {sig:.2f} mag less light per second in "
                f"{Path(str(fs[j]['name'])).name} than in {Path(str(fs[i]['name'])).name} "
                f"(airmass corrected): clouds or changing transparency"))
    return out


def stack_alarms(stack_id: str, qc: Mapping[str, float], th: AlarmThresholds = DEFAULT
                 ) -> list[Alarm]:
    """Fraction of a stack's grid that no frame covers."""
    cov = qc.get("coverage_fraction")
    if cov is None or not np.isfinite(cov):
        return []
    unc = 1.0 - float(cov)
    if unc <= th.uncovered_fraction:
        return []
    return [Alarm("uncovered_fraction", "register", stack_id, unc, th.uncovered_fraction,
                  f"{unc:.1%} of the stack has no frame behind it")]


def negative_flux_alarms(stack_id: str, n_negative: float, n_pixels: float,
                         n_total: float | None = None, th: AlarmThresholds = DEFAULT,
                         stage: str = "photometry") -> list[Alarm]:
    """Detections with negative flux in one stack's catalogue, per million pixels searched.

    Noise peaks pass any detection threshold; at 4 sigma, DAOStarFinder finds about 30 per
    million pixels of white noise and 50 in a resampled stack's correlated noise, and about
    half of them come out negative in an aperture. The alarm fires well above that.
    """
    if not n_pixels:
        return []
    rate = float(n_negative) / float(n_pixels) * 1e6
    if rate <= th.negative_flux_per_mpx:
        return []
    of = f" of {int(n_total)}" if n_total else ""
    return [Alarm("negative_flux", stage, stack_id, rate, th.negative_flux_per_mpx,
                  f"{int(n_negative)}{of} detections have negative flux ({rate:.0f} per "
                  "million pixels)")]


def zero_point_jump_alarms(short_long: Mapping[str, Mapping], th: AlarmThresholds = DEFAULT,
                           stage: str = "photcal") -> list[Alarm]:
    """Offsets between the short and long stacks of one pointing and filter (count rates of
    the same stars: ``offset_mag`` = long - short, with ``offset_err``)."""
    out = []
    for key, info in sorted(short_long.items()):
        off, err = info.get("offset_mag"), info.get("offset_err")
        if off is None or err is None or not info.get("n_common"):
            continue
        if abs(off) > th.zero_point_jump_mag and abs(off) > th.zero_point_jump_sigma * err:
            out.append(Alarm(
                "zero_point_jump", stage, str(key), abs(float(off)), th.zero_point_jump_mag,
                f"the long stack's stars are {abs(off):.3f} ± {err:.3f} mag "
                f"{'fainter' if off > 0 else 'brighter'} than the short stack's "
                f"({info['n_common']} stars, count rates): not a photometric night, or a "
                "shutter timing error"))
    return out


def sky_brightness_alarms(filt: str, subject: str, sky_mag_arcsec2: float,
                          th: AlarmThresholds = DEFAULT, stage: str = "photcal") -> list[Alarm]:
    """The sky's surface brightness against a dark site's in the same filter."""
    dark = th.dark_sky_mag_arcsec2.get(filt)
    if dark is None or not np.isfinite(sky_mag_arcsec2):
        return []
    limit = dark - th.sky_bright_margin_mag
    if sky_mag_arcsec2 >= limit:
        return []
    return [Alarm("sky_brightness", stage, subject, float(sky_mag_arcsec2), limit,
                  f"sky {sky_mag_arcsec2:.2f} mag/arcsec2 in {filt} (a dark site: {dark:.1f})")]


def astrometry_alarms(stack_id: str, rms_arcsec: float | None, scale_arcsec: float | None,
                      n_matched: int | None = None, th: AlarmThresholds = DEFAULT
                      ) -> list[Alarm]:
    """A plate solution's residuals against its reference catalogue."""
    if rms_arcsec is None or not np.isfinite(rms_arcsec):
        return []
    limit = max(th.astrometric_rms_arcsec, th.astrometric_rms_px * float(scale_arcsec or 0.0))
    if rms_arcsec <= limit:
        return []
    return [Alarm("astrometry", "solve", stack_id, float(rms_arcsec), limit,
                  f"plate solution residuals {rms_arcsec:.2f}\" RMS"
                  + (f" on {n_matched} stars" if n_matched else ""))]


def frame_figures(path: str, name: str, filt: str, group: str, kind: str = "science"
                  ) -> FrameFigures:
    """A calibrated frame's figures, from the QC cards its calibration wrote (QCMASKF,
    QCCRPIX, QCSKYRT) and its shape: read from the header alone, so frames reused from an
    earlier run count as well as new ones."""
    from astropy.io import fits

    h = fits.getheader(path)
    n = int(h.get("NAXIS1", 0)) * int(h.get("NAXIS2", 0))
    sky = float(h.get("QCSKYRT", -1.0))
    return FrameFigures(name=name, filter=filt, group=group,
                        exptime_s=float(h.get("EXPTIME", 0.0) or 0.0),
                        masked_fraction=float(h.get("QCMASKF", 0.0)),
                        cosmic_ray_pixels=float(h.get("QCCRPIX", 0.0)), n_pixels=n,
                        sky_e_per_s=sky if sky >= 0 else float("nan"), flags_path=path,
                        airmass=float(h["AIRMASS"]) if h.get("AIRMASS") is not None else None,
                        kind=kind)


def registration_alarms(stacks: Mapping[str, Mapping], th: AlarmThresholds = DEFAULT
                        ) -> list[Alarm]:
    """Coverage of each stack, and transparency between the frames of each pointing and
    filter (all exposure classes together), from the registration stage's stack records
    (``stack_id`` = ``cluster/pointing/filter/class``; ``qc``; ``frames`` with ``path``,
    ``exptime_s``, ``airmass`` and ``star_flux``)."""
    out: list[Alarm] = []
    frames = []
    for sid, st in sorted(stacks.items()):
        out += stack_alarms(sid, st.get("qc") or {}, th)
        parts = sid.split("/")
        group, filt = "/".join(parts[:-2]), parts[-2] if len(parts) >= 2 else ""
        for f in st.get("frames") or []:
            frames.append({"name": f.get("path", ""), "group": group, "filter": filt,
                           "exptime_s": f.get("exptime_s"), "airmass": f.get("airmass"),
                           "star_flux": f.get("star_flux")})
    return out + transparency_alarms(frames, th)


def sky_surface_brightness(sky_e_per_s: float, pixel_scale_arcsec: float, zp: float,
                           k: float = 0.0, airmass: float | None = None) -> float:
    """The sky in mag/arcsec2 from its count rate per pixel and a photometric solution
    (m_std = m_inst + ZP - k X, colour term left out: the sky has no star's colour)."""
    if not (sky_e_per_s and sky_e_per_s > 0 and pixel_scale_arcsec and pixel_scale_arcsec > 0):
        return float("nan")
    x = float(airmass) if airmass is not None and np.isfinite(airmass) else 0.0
    return float(-2.5 * np.log10(sky_e_per_s / pixel_scale_arcsec ** 2) + zp - k * x)


def photcal_alarms(short_long: Mapping[str, Mapping], stacks: Mapping[str, Mapping],
                   solutions: Mapping[str, Mapping], th: AlarmThresholds = DEFAULT
                   ) -> tuple[list[Alarm], dict[str, float]]:
    """Zero-point jumps between short and long stacks, and the sky's brightness per stack.

    Parameters
    ----------
    short_long : mapping
        ``pointing/filter`` -> ``offset_mag``, ``offset_err``, ``n_common`` (the cluster
        catalogue's merge of short and long stacks).
    stacks : mapping
        Stack id (``cluster/pointing/filter/class``) -> the photometry stage's result, with
        ``qc`` (``sky_e_per_s``, ``pixel_scale_arcsec``) and ``airmass``.
    solutions : mapping
        Filter -> photometric solution (``zp``, ``k``).

    Returns
    -------
    alarms, sky
        The alarms, and each stack's sky in mag/arcsec2.
    """
    out = zero_point_jump_alarms(short_long, th)
    sky: dict[str, float] = {}
    for sid, st in sorted(stacks.items()):
        filt = sid.split("/")[-2] if "/" in sid else ""
        sol, qc = solutions.get(filt), st.get("qc") or {}
        if sol is None:
            continue
        mu = sky_surface_brightness(qc.get("sky_e_per_s", float("nan")),
                                    qc.get("pixel_scale_arcsec", float("nan")),
                                    float(sol["zp"]), float(sol.get("k") or 0.0),
                                    st.get("airmass"))
        if np.isfinite(mu):
            sky[sid] = mu
            out += sky_brightness_alarms(filt, sid, mu, th)
    return out, sky


def solve_alarms(solutions: Mapping[str, Mapping], scales: Mapping[str, float] | None = None,
                 th: AlarmThresholds = DEFAULT) -> list[Alarm]:
    """Astrometric residuals of each plate solution (once per solved stack: the stacks that
    took their pointing's WCS from another repeat its figures)."""
    out = []
    for sid, s in sorted(solutions.items()):
        if s.get("solved_on", sid) != sid:
            continue
        out += astrometry_alarms(sid, s.get("rms_arcsec"), (scales or {}).get(sid),
                                 s.get("n_matched"), th)
    return out
