"""Instrument profiles and header normalisation."""

from pathlib import Path

import pytest
from astropy.io import fits

from tgpcore.instruments import available_profiles, load_profile, select_profile
from tgpcore.instruments.profile import ProfileError
from tgpcore.io.header import normalise_header, parse_angle, parse_section

CAHA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ngc2420_caha"


def test_packaged_profiles_load():
    names = available_profiles()
    assert {"generic", "caha_cafos", "tgpsim"} <= set(names)
    for name in names:
        prof = load_profile(name)
        assert prof.keywords["imagetyp"], name
        assert set(prof.kind_aliases) == {"bias", "dark", "flat", "science", "standard"}


@pytest.mark.parametrize("value,kind", [
    ("Bias Frame", "bias"), ("zero", "bias"), ("BIAS", "bias"), ("Light Frame", "science"),
    ("light", "science"), ("OBJECT", "science"), ("Dark Frame", "dark"), ("Flat Field", "flat"),
    ("SKYFLAT", "flat"), ("dome_flat", "flat"), ("science ", "science"), ("standard", "standard"),
])
def test_generic_kind_aliases(value, kind):
    assert load_profile("generic").canonical_kind(value) == kind


def test_unknown_kind_is_none():
    assert load_profile("generic").canonical_kind("focus") is None


@pytest.mark.parametrize("value,filt", [
    ("V", "V"), ("Johnson V", "V"), ("JohnsonB  ", "B"), ("Bessell U", "U"), ("b", "B"),
    ("Cousins R", "R"), ("clear", "open"),
])
def test_filter_aliases(value, filt):
    assert load_profile("caha_cafos").canonical_filter(value) == filt


def test_select_profile_by_telescope():
    h = fits.Header({"TELESCOP": "CA-2.2", "INSTRUME": "CAFOS 2.2"})
    assert select_profile(h).name == "caha_cafos"
    assert select_profile(fits.Header({"TELESCOP": "TGP-SIM 1.0m", "INSTRUME": "SIMCAM"})
                          ).name == "tgpsim"
    assert select_profile(fits.Header({"TELESCOP": "Somewhere 0.4m"})).name == "generic"


def test_user_profile_from_file(tmp_path):
    p = tmp_path / "mycam.toml"
    p.write_text('[profile]\nname = "mycam"\nbase = "generic"\n'
                 '[keywords]\nfilter = ["FILTPOS"]\n[values.filter]\nV = ["slot3"]\n')
    prof = load_profile(p)
    assert prof.name == "mycam"
    h = fits.Header({"IMAGETYP": "Light Frame", "FILTPOS": "slot3", "EXPTIME": 30})
    s = normalise_header(h, prof)
    assert (s.kind, s.filter, s.exptime_s) == ("science", "V", 30.0)
    # generic aliases are kept next to the user's
    assert prof.canonical_filter("Johnson B") == "B"


def test_bad_profile_file_names_the_file(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text("[profile\nname=")
    with pytest.raises(ProfileError, match="broken.toml"):
        load_profile(p)
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "missing.toml")


def test_normalise_collects_problems_instead_of_raising():
    h = fits.Header({"IMAGETYP": "LIGHT", "FILTER": "V", "EXPTIME": "abc", "RA": "xx",
                     "DEC": "12", "TRIMSEC": "[0:5,1:2]", "GAIN": "1.2"})
    s = normalise_header(h, load_profile("generic"))
    assert s.exptime_s is None and s.ra_deg is None and s.trim_section is None
    assert s.gain_e_per_adu == pytest.approx(1.2)
    assert any("EXPTIME" in p for p in s.problems)
    assert any("RA" in p for p in s.problems)
    assert any("TRIMSEC" in p for p in s.problems)


def test_parse_angle_and_section():
    assert parse_angle("07:39:39.8", hours=True) == pytest.approx(114.9158, abs=1e-4)
    assert parse_angle("-30 00 00", hours=False) == pytest.approx(-30.0)
    assert parse_angle(12.5, hours=False) == 12.5
    assert parse_angle("junk", hours=True) is None
    assert parse_section("[1:1024,1:1024]") == (1, 1024, 1, 1024)
    assert parse_section("[0,513:0,1536]") is None


@pytest.mark.realdata
def test_caha_equinox_of_date_is_precessed_to_j2000():
    """The CAFOS header RA/DEC are of the equinox of date: precessed, they land on NGC 2420."""
    f = CAHA / "science" / "NGC2420" / "V" / "uamA_0033.fits"
    if not f.exists():
        pytest.skip(f"real data not found at {f}")
    h = fits.getheader(f)
    s = normalise_header(h, select_profile(h))
    # NGC 2420 centre (SIMBAD): 114.602, +21.575. Raw header RA is ~17.8' away (0.31 deg in RA).
    assert abs(s.ra_header_deg - 114.602) > 0.25
    assert s.ra_deg == pytest.approx(114.602, abs=0.01)
    assert s.dec_deg == pytest.approx(21.575, abs=0.01)
    assert (s.gain_e_per_adu, s.read_noise_e, s.pixel_scale_arcsec) == (1.43, 7.4, 0.53)
