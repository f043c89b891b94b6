"""Inventory: classification by headers, folder fallback, grouping, bad files."""

from pathlib import Path

import pytest

from tgpcore.grouping import assign_pointings, load_grouping_overrides, parse_object_name
from tgpcore.inventory import format_inventory, scan_night

from _fitsfactory import small_night, write_frame

REPO = Path(__file__).resolve().parents[1]
CAHA = REPO.parent / "shared" / "data" / "ngc2420_caha"


def by_name(inv):
    return {Path(r.relpath).name: r for r in inv.records}


def test_small_night_classified(tmp_path):
    inv = scan_night(small_night(tmp_path / "night"))
    counts = inv.counts()
    assert counts == {"bias": 3, "dark": 6, "flat": 10, "science": 6, "standard": 1,
                      "rejected": 0}
    sci = inv.accepted("science")
    # (120, 25) and (120, 25.0005) are 1.8" apart: one pointing; (120.05, 25) is 163" away.
    assert sorted({r.group_key for r in sci}) == ["NGC1234/p0/B", "NGC1234/p0/V",
                                                  "NGC1234/p1/B", "NGC1234/p1/V"]
    std = inv.accepted("standard")[0]
    assert std.cluster == "SA98" and std.airmass == 1.3
    for r in inv.accepted("bias") + inv.accepted("dark"):
        assert r.filter is None
    assert all(r.sha256 and len(r.sha256) == 64 for r in inv.records)
    assert "no dark" not in " ".join(inv.warnings)
    assert "NGC1234/p1/V" in format_inventory(inv)


def test_bad_files_are_recorded_not_fatal(tmp_path):
    root = small_night(tmp_path / "night", darks=False)
    (root / "notes.txt").write_text("observing log: clouds at 2am\n")
    (root / "empty.fits").write_bytes(b"")
    good = write_frame(root / "trunc.fits", (64, 64), IMAGETYP="LIGHT", FILTER="V",
                       EXPTIME=10.0, OBJECT="NGC 1234")
    good.write_bytes(good.read_bytes()[:4000])
    (root / "garbage.fits").write_bytes(b"SIMPLE  =  this is not really a header" * 100)
    write_frame(root / "notype.fits", FILTER="V", EXPTIME=10.0)
    write_frame(root / "weirdtype.fits", IMAGETYP="focus", FILTER="V", EXPTIME=10.0)
    write_frame(root / "nofilter.fits", IMAGETYP="LIGHT", EXPTIME=10.0, OBJECT="NGC 1234")
    write_frame(root / "noexp.fits", IMAGETYP="LIGHT", FILTER="V", OBJECT="NGC 1234")
    write_frame(root / "noobject.fits", IMAGETYP="LIGHT", FILTER="V", EXPTIME=3.0)
    inv = scan_night(root)
    r = by_name(inv)
    expect = {
        "notes.txt": "not a FITS file",
        "empty.fits": "empty file",
        "trunc.fits": "truncated FITS file",
        "garbage.fits": "unreadable FITS file",
        "notype.fits": "cannot classify: no IMAGETYP/FRAMETYP/OBSTYPE",
        "weirdtype.fits": "unknown frame type 'focus'",
        "nofilter.fits": "science frame without a filter",
        "noexp.fits": "without an exposure time",
        "noobject.fits": "without an object name",
    }
    for name, reason in expect.items():
        assert r[name].status == "rejected", name
        assert reason in r[name].reason, (name, r[name].reason)
    # The good frames are all still there.
    assert inv.counts()["science"] == 6 and inv.counts()["flat"] == 10
    assert any("no dark frames" in w for w in inv.warnings)
    assert any("9 file(s) rejected" in w for w in inv.warnings)


def test_tgp2020_folder_fallback(tmp_path):
    root = tmp_path / "tgp2020"
    write_frame(root / "Cali" / "BIAS" / "b1.fits", EXPTIME=0.0)
    write_frame(root / "Cali" / "DARKS" / "d1.fits", EXPTIME=60.0)
    write_frame(root / "Cali" / "V" / "f1.fits", EXPTIME=2.0)
    write_frame(root / "Sci" / "NGC2420" / "offset1" / "s1.fits", EXPTIME=60.0, FILTER="V")
    write_frame(root / "Sci" / "NGC2420" / "offset2" / "s2.fits", EXPTIME=60.0, FILTER="V")
    # Headers win over the folder when they speak.
    write_frame(root / "Cali" / "BIAS" / "really_a_flat.fits", IMAGETYP="FLAT", FILTER="B",
                EXPTIME=3.0)
    r = by_name(scan_night(root))
    assert (r["b1.fits"].kind, r["d1.fits"].kind) == ("bias", "dark")
    assert (r["f1.fits"].kind, r["f1.fits"].filter) == ("flat", "V")
    assert r["f1.fits"].sources["kind"] == "folder:tgp2020"
    assert r["s1.fits"].group_key == "NGC2420/offset1/V"
    assert r["s2.fits"].group_key == "NGC2420/offset2/V"
    assert (r["really_a_flat.fits"].kind, r["really_a_flat.fits"].filter) == ("flat", "B")


def test_grouping_override_file(tmp_path):
    root = tmp_path / "night"
    write_frame(root / "a.fits", IMAGETYP="LIGHT", FILTER="V", EXPTIME=5.0, OBJECT="field 1",
                RA=10.0, DEC=10.0)
    write_frame(root / "b.fits", IMAGETYP="LIGHT", FILTER="V", EXPTIME=5.0, OBJECT="NCG 2420",
                RA=10.0, DEC=10.0)
    mapping = tmp_path / "grouping.toml"
    mapping.write_text('[objects]\n"field 1" = "NGC2420"\n'
                       '[files."b.fits"]\npointing = "east"\n')
    r = by_name(scan_night(root, grouping=mapping))
    assert r["a.fits"].group_key == "NGC2420/p0/V"
    assert r["b.fits"].group_key == "NGC2420/east/V"
    bad = tmp_path / "bad.toml"
    bad.write_text('[files."a.fits"]\nexptime = 3\n')
    with pytest.raises(ValueError, match="bad.toml"):
        scan_night(root, grouping=bad)


def test_missing_night_dir_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        scan_night(tmp_path / "nope")


@pytest.mark.parametrize("obj,cluster,hint", [
    ("NCG2420 V", "NGC2420", None), ("NGC 2420 B", "NGC2420", None),
    ("ngc2420 off1", "NGC2420", "off1"), ("GNC-2420_v", "NGC2420", None),
    ("M 67", "M67", None), ("Berkeley 39 V 60s", "Berkeley39", None),
    ("SA 98", "SA98", None), ("SIM-NGC1", "SIM-NGC1", None),
])
def test_object_names(obj, cluster, hint):
    parsed = parse_object_name(obj)
    assert (parsed.cluster, parsed.pointing_hint) == (cluster, hint)


def test_assign_pointings():
    pos = [(10.0, 0.0), (10.001, 0.0), None, (10.1, 0.0), (10.0005, 0.0003)]
    assert assign_pointings(pos, 60.0) == ["p0", "p0", None, "p1", "p0"]
    # across RA = 0
    assert assign_pointings([(359.9999, 0.0), (0.0001, 0.0)], 5.0) == ["p0", "p0"]


def test_empty_grouping_overrides():
    assert load_grouping_overrides(None).for_file("x.fits") == {}


@pytest.mark.realdata
def test_real_ngc2420_night():
    """All 15 real CAHA frames: 2 biases, B and V flats, 6 B and 5 V science frames."""
    if not CAHA.is_dir():
        pytest.skip(f"real data not found at {CAHA}")
    inv = scan_night(CAHA)
    assert len(inv.records) == 15
    assert inv.counts() == {"bias": 2, "dark": 0, "flat": 2, "science": 11, "standard": 0,
                            "rejected": 0}
    assert sorted(r.filter for r in inv.accepted("flat")) == ["B", "V"]
    groups = [r.group_key for r in inv.accepted("science")]
    assert groups.count("NGC2420/p0/B") == 6 and groups.count("NGC2420/p0/V") == 5
    assert all(r.profile == "caha_cafos" for r in inv.records)
    assert any("no dark frames" in w for w in inv.warnings)
    exps = sorted(r.exptime_s for r in inv.accepted("science") if r.filter == "B")
    assert exps == [2.0, 3.0, 3.0, 60.0, 60.0, 60.0]
