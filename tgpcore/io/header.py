"""Header normalisation: from one camera's keywords to tgp's quantities.

``normalise_header`` never raises on bad header content: every problem is collected in
``HeaderSummary.problems`` so that the inventory can record it and carry on.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from astropy.io.fits import Header

from tgpcore.instruments.profile import InstrumentProfile

_SECTION = re.compile(r"^\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]$")


@dataclass
class HeaderSummary:
    """The quantities tgp needs from a header, in fixed units.

    Angles in degrees (ICRS/J2000 in ``ra``/``dec``), times in seconds, gain in e-/ADU,
    read noise in e-. ``None`` where the header does not say.
    """

    kind: str | None = None
    imagetyp_raw: str | None = None
    filter: str | None = None
    filter_raw: str | None = None
    exptime_s: float | None = None
    object: str | None = None
    date_obs: str | None = None
    mjd: float | None = None
    ra_deg: float | None = None
    dec_deg: float | None = None
    ra_header_deg: float | None = None
    dec_header_deg: float | None = None
    airmass: float | None = None
    gain_e_per_adu: float | None = None
    read_noise_e: float | None = None
    saturation_adu: float | None = None
    pixel_scale_arcsec: float | None = None
    binning: str | None = None
    naxis1: int | None = None
    naxis2: int | None = None
    overscan_section: str | None = None
    trim_section: str | None = None
    telescope: str | None = None
    instrument: str | None = None
    keywords_used: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary of the summary."""
        return asdict(self)


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        out = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def parse_angle(value: Any, hours: bool) -> float | None:
    """Parse a header angle to degrees.

    Sexagesimal strings ('07:39:39.8', '7 39 39.8') are read as hours when ``hours`` (RA)
    and degrees otherwise; plain numbers are degrees.
    """
    if value is None:
        return None
    number = _as_float(value)
    if number is not None:
        return number
    text = str(value).strip()
    parts = re.split(r"[:\s hdms°'\"]+", text)
    parts = [p for p in parts if p]
    if not 2 <= len(parts) <= 3:
        return None
    try:
        sign = -1.0 if parts[0].startswith("-") else 1.0
        nums = [abs(float(p)) for p in parts]
    except ValueError:
        return None
    deg = nums[0] + nums[1] / 60.0 + (nums[2] / 3600.0 if len(nums) == 3 else 0.0)
    deg *= sign
    return deg * 15.0 if hours else deg


def parse_section(value: Any) -> tuple[int, int, int, int] | None:
    """Parse an IRAF section '[x1:x2,y1:y2]' (1-based, inclusive) into a tuple, or None."""
    if not isinstance(value, str):
        return None
    m = _SECTION.match(value.strip())
    if not m:
        return None
    x1, x2, y1, y2 = (int(g) for g in m.groups())
    if min(x1, x2, y1, y2) < 1 or x2 < x1 or y2 < y1:
        return None
    return x1, x2, y1, y2


def _to_j2000(ra: float, dec: float, date_obs: str | None, mjd: float | None,
              equinox_rule: str, problems: list[str]) -> tuple[float, float]:
    if str(equinox_rule).lower() != "date":
        return ra, dec
    from astropy import units as u
    from astropy.coordinates import FK5, SkyCoord
    from astropy.time import Time

    try:
        when = Time(mjd, format="mjd") if mjd is not None else Time(date_obs)
    except Exception:  # noqa: BLE001
        problems.append("profile says RA/DEC are of the equinox of date, but the date is unreadable;"
                        " RA/DEC taken as J2000")
        return ra, dec
    c = SkyCoord(ra * u.deg, dec * u.deg, frame=FK5(equinox=when)).transform_to(FK5(equinox="J2000"))
    return float(c.ra.deg), float(c.dec.deg)


def normalise_header(header: Header, profile: InstrumentProfile,
                     shape: tuple[int, int] | None = None) -> HeaderSummary:
    """Read the quantities tgp needs from a FITS header, through an instrument profile.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The header of the image HDU (primary or first image extension).
    profile : InstrumentProfile
        Keyword and value conventions of the instrument.
    shape : (ny, nx), optional
        The image's shape, if known from the HDU; otherwise NAXIS1/NAXIS2 are used.

    Returns
    -------
    HeaderSummary
        With ``problems`` listing every keyword that was present but unreadable.
    """
    s = HeaderSummary()
    used = s.keywords_used

    def get(quantity: str) -> Any:
        key, value = profile.lookup(header, quantity)
        if key is not None:
            used[quantity] = key
        return value

    raw_type = get("imagetyp")
    if raw_type is not None:
        s.imagetyp_raw = str(raw_type).strip()
        s.kind = profile.canonical_kind(raw_type)
        if s.kind is None:
            s.problems.append(f"unknown frame type {s.imagetyp_raw!r} in {used['imagetyp']}")

    raw_filter = get("filter")
    if raw_filter is not None:
        s.filter_raw = str(raw_filter).strip()
        s.filter = profile.canonical_filter(raw_filter)
        if s.filter is None:
            # Keep an unknown filter under its own name: it is data, not an error.
            s.filter = re.sub(r"\s+", "", s.filter_raw) or None

    for quantity, attr in (("exptime", "exptime_s"), ("airmass", "airmass"), ("mjd", "mjd"),
                           ("gain", "gain_e_per_adu"), ("read_noise", "read_noise_e"),
                           ("saturation", "saturation_adu"),
                           ("pixel_scale", "pixel_scale_arcsec")):
        value = get(quantity)
        if value is None:
            continue
        number = _as_float(value)
        if number is None:
            s.problems.append(f"{used[quantity]} = {value!r} is not a number")
        elif quantity == "exptime" and number < 0:
            s.problems.append(f"{used[quantity]} = {number} is negative")
        else:
            setattr(s, attr, number)

    obj = get("object")
    if obj is not None:
        s.object = str(obj).strip()
    date = get("date_obs")
    if date is not None:
        s.date_obs = str(date).strip()
    for quantity in ("telescope", "instrument"):
        value = get(quantity)
        if value is not None:
            setattr(s, quantity, str(value).strip())

    ra_raw, dec_raw = get("ra"), get("dec")
    if ra_raw is not None and dec_raw is not None:
        ra = parse_angle(ra_raw, hours=isinstance(ra_raw, str) and _as_float(ra_raw) is None)
        dec = parse_angle(dec_raw, hours=False)
        if ra is None or dec is None or not (-90 <= dec <= 90):
            s.problems.append(f"unreadable pointing RA={ra_raw!r} DEC={dec_raw!r}")
        else:
            ra %= 360.0
            s.ra_header_deg, s.dec_header_deg = ra, dec
            s.ra_deg, s.dec_deg = _to_j2000(ra, dec, s.date_obs, s.mjd,
                                            profile.rules.get("coordinate_equinox", "J2000"),
                                            s.problems)

    bx, by = _as_float(get("binning_x")), _as_float(get("binning_y"))
    if bx is None or by is None:
        both = get("binning")
        if both is not None:
            nums = re.findall(r"\d+", str(both))
            if len(nums) >= 2:
                bx, by = float(nums[0]), float(nums[1])
    s.binning = f"{int(bx or 1)}x{int(by or 1)}"

    if shape is not None:
        s.naxis2, s.naxis1 = int(shape[0]), int(shape[1])
    else:
        n1, n2 = _as_float(header.get("NAXIS1")), _as_float(header.get("NAXIS2"))
        s.naxis1 = int(n1) if n1 is not None else None
        s.naxis2 = int(n2) if n2 is not None else None

    for quantity, attr in (("overscan", "overscan_section"), ("trim", "trim_section")):
        value = get(quantity)
        if value is None:
            continue
        if parse_section(value) is None:
            s.problems.append(f"{used[quantity]} = {value!r} is not a valid section; ignored")
        else:
            setattr(s, attr, str(value).strip())

    if s.pixel_scale_arcsec is None and profile.detector.get("pixel_scale_arcsec"):
        s.pixel_scale_arcsec = float(profile.detector["pixel_scale_arcsec"])
    if s.saturation_adu is None and profile.detector.get("saturation_adu"):
        s.saturation_adu = float(profile.detector["saturation_adu"])
    return s
