"""Property-based tests (hypothesis): header normalisation and the inventory on random and
mangled headers and files. Nothing may crash uncaught; every file gets a record, accepted or
rejected with a reason."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgpcore.instruments.profile import available_profiles, load_profile
from tgpcore.inventory import KINDS, scan_night
from tgpcore.io.header import normalise_header

PROFILES = {name: load_profile(name) for name in available_profiles()}
KEYWORDS = sorted({k for p in PROFILES.values() for keys in p.keywords.values() for k in keys
                   if len(k) <= 8 and k.replace("-", "").replace("_", "").isalnum()})
PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)
KIND_WORDS = ["bias", "Bias Frame", "zero", "dark", "flat", "Light Frame", "object", "science",
              "standard", "focus", "", " ", "FLAT FIELD", "sky flat", "???"]

# Values as cameras write them, right and wrong: words, numbers as text, sexagesimal angles,
# dates, sections, and junk.
VALUES = st.one_of(
    st.sampled_from(KIND_WORDS),
    st.text(PRINTABLE, max_size=40),
    st.integers(-10**12, 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.builds(lambda h, m, s: f"{h:02d}:{m:02d}:{s:05.2f}", st.integers(-30, 30),
              st.integers(0, 70), st.floats(0, 70)),
    st.builds(lambda d, m, s: f"{d:+03d} {m:02d} {s:04.1f}", st.integers(-100, 100),
              st.integers(0, 70), st.floats(0, 70)),
    st.builds(lambda y, mo, d: f"{y:04d}-{mo:02d}-{d:02d}T25:61:00", st.integers(0, 9999),
              st.integers(0, 13), st.integers(0, 32)),
    st.builds(lambda a, b, c, d: f"[{a}:{b},{c}:{d}]", st.integers(-5, 3000),
              st.integers(-5, 3000), st.integers(-5, 3000), st.integers(-5, 3000)),
    st.sampled_from(["1x1", "2 2", "x", "NaN", "inf", "-0", "1e400", "U", "Johnson V", "B "]),
)
CARDS = st.dictionaries(st.one_of(st.sampled_from(KEYWORDS),
                                  st.from_regex(r"\A[A-Z][A-Z0-9_-]{0,7}\Z")),
                        VALUES, max_size=25)


def _header(cards: dict) -> fits.Header:
    header = fits.Header()
    for key, value in cards.items():
        if key in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "END",
                   "BSCALE", "BZERO", "BLANK", "CONTINUE", "COMMENT", "HISTORY"):
            continue
        header[key] = value
    return header


@settings(max_examples=150, deadline=None)
@given(cards=CARDS, profile=st.sampled_from(sorted(PROFILES)),
       shape=st.one_of(st.none(), st.tuples(st.integers(1, 5000), st.integers(1, 5000))))
def test_normalise_header_never_raises(cards, profile, shape):
    s = normalise_header(_header(cards), PROFILES[profile], shape=shape)
    assert s.kind is None or s.kind in KINDS
    assert all(isinstance(p, str) and p for p in s.problems)
    if s.exptime_s is not None:
        assert math.isfinite(s.exptime_s) and s.exptime_s >= 0
    if s.dec_deg is not None:
        assert -90 <= s.dec_deg <= 90 and 0 <= s.ra_deg < 360
    for name in ("airmass", "gain_e_per_adu", "read_noise_e", "mjd"):
        value = getattr(s, name)
        assert value is None or math.isfinite(value)
    json.dumps(s.to_dict())  # plain data


def _fits_bytes(cards: dict, shape: tuple[int, int]) -> bytes:
    hdu = fits.PrimaryHDU(np.zeros(shape, np.int16), header=_header(cards))
    import io

    buf = io.BytesIO()
    hdu.writeto(buf, output_verify="silentfix")
    return buf.getvalue()


MANGLES = st.one_of(
    st.just(("keep", 0, b"")),
    st.tuples(st.just("truncate"), st.integers(0, 8000), st.just(b"")),
    st.tuples(st.just("overwrite"), st.integers(0, 2879), st.binary(min_size=1, max_size=80)),
    st.tuples(st.just("overwrite-text"), st.integers(0, 2879),
              st.text(PRINTABLE, min_size=1, max_size=80).map(str.encode)),
    st.tuples(st.just("random"), st.just(0), st.binary(max_size=4000)),
)


def _mangle(content: bytes, how: tuple[str, int, bytes]) -> bytes:
    kind, at, data = how
    if kind == "truncate":
        return content[:at]
    if kind.startswith("overwrite"):
        return content[:at] + data + content[at + len(data):]
    if kind == "random":
        return data
    return content


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(st.tuples(CARDS, MANGLES,
                                st.tuples(st.integers(1, 12), st.integers(1, 12)),
                                st.sampled_from(["", "Cali/BIAS/", "Sci/NGC2420/off1/",
                                                 "Cali/V/", "odd dir/"])),
                      min_size=1, max_size=6))
def test_inventory_survives_random_and_mangled_files(files):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        written = []
        for i, (cards, how, shape, folder) in enumerate(files):
            path = root / folder / f"f{i:02d}.fits"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_mangle(_fits_bytes(cards, shape), how))
            written.append(path.resolve())
        inv = scan_night(root)
    assert sorted(Path(r.path) for r in inv.records) == sorted(written)
    for r in inv.records:
        assert r.status in ("accepted", "rejected")
        if r.status == "rejected":
            assert isinstance(r.reason, str) and r.reason
        else:
            assert r.kind in KINDS and r.kind != "unknown"
            assert r.exptime_s is not None and r.exptime_s >= 0
    json.dumps(inv.to_payload())


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"NOT A FITS FILE" * 10, "not a FITS file"),
    (b"SIMPLE  =                    T" + b" " * 50, "unreadable FITS file"),
])
def test_inventory_reasons_for_broken_files(tmp_path, content, reason):
    (tmp_path / "x.fits").write_bytes(content)
    (rec,) = scan_night(tmp_path).records
    assert rec.status == "rejected" and reason in rec.reason
