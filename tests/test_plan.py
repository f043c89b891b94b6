"""The calibration plan: matching rules as data, warnings and refusals."""

from pathlib import Path

import pytest

from tgpcore.calibration.plan import CalibrationPlan, build_plan, format_plan, load_rules
from tgpcore.inventory import scan_night

from _fitsfactory import small_night, write_frame

CAHA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ngc2420_caha"


def entries(plan):
    return {Path(e.relpath).name: e for e in plan.entries}


def test_complete_night_plan(tmp_path):
    plan = build_plan(scan_night(small_night(tmp_path / "n")))
    kinds = sorted(m.kind for m in plan.masters.values())
    # one bias, darks at 60 s and 300 s, flats in B and V
    assert kinds == ["bias", "dark", "dark", "flat", "flat"]
    assert len(plan.entries) == 7 and not plan.refused()
    for e in plan.entries:
        assert e.bias_key.startswith("bias_1x1_20x16")
        assert e.flat_key.startswith(f"flat_{e.filter}_")
    sci = [e for e in plan.entries if e.kind == "science"]
    assert all(e.dark_key.startswith("dark_1x1_20x16_60s") and e.dark_scale == 1.0 for e in sci)
    std = next(e for e in plan.entries if e.kind == "standard")
    # 30 s standard: nearest dark is 60 s, scaled by 0.5 with a warning
    assert std.dark_scale == pytest.approx(0.5)
    assert any("scaled from 60 s to 30 s" in w for w in std.warnings)
    flat = next(m for m in plan.masters.values() if m.kind == "flat")
    assert flat.depends["bias"].startswith("bias_") and flat.depends["dark"].startswith("dark_")
    # round trip through plain data (task results, database)
    again = CalibrationPlan.from_dict(plan.to_dict())
    assert again.to_dict() == plan.to_dict()
    masters, rows = plan.db_records()
    assert len(masters) == 5 and len(rows) == 7
    assert "7/7 frames can be calibrated" in format_plan(plan)


def test_no_darks_warns_bias_only(tmp_path):
    plan = build_plan(scan_night(small_night(tmp_path / "n", darks=False)))
    assert not plan.refused()
    assert any("no darks" in w for w in plan.warnings)
    assert all(e.dark_key is None and any("bias-only" in w for w in e.warnings)
               for e in plan.entries)


def test_missing_flat_filter_is_refused_rest_goes_on(tmp_path):
    root = small_night(tmp_path / "n", flats=("V",))
    plan = build_plan(scan_night(root))
    refused = plan.refused()
    assert {e.filter for e in refused} == {"B"}
    assert all("no flat matching B" in e.reason for e in refused)
    assert all(e.status == "ok" for e in plan.entries if e.filter == "V")
    assert any("frame(s) refused" in w for w in plan.warnings)


def test_flat_of_other_shape_is_refused(tmp_path):
    root = small_night(tmp_path / "n", flats=("V",))
    for i in range(5):
        write_frame(root / f"bigflat_{i}.fits", (32, 32), IMAGETYP="FLAT", FILTER="B",
                    EXPTIME=4.0, DATE_OBS="2026-03-01T19:00:00")
    plan = build_plan(scan_night(root))
    refused = plan.refused()
    assert refused and all("available: B 1x1 32x32" in e.reason for e in refused)


def test_old_flat_warns_then_refuses(tmp_path):
    root = small_night(tmp_path / "n", flats=("V",))
    for i in range(5):
        write_frame(root / f"oldflat_{i}.fits", IMAGETYP="FLAT", FILTER="B", EXPTIME=4.0,
                    DATE_OBS="2026-02-20T19:00:00")
    plan = build_plan(scan_night(root))
    b = [e for e in plan.entries if e.filter == "B"]
    assert all(e.status == "ok" for e in b)
    assert all(any("flat master" in w and "days from this frame" in w for w in e.warnings)
               for e in b)
    rules = load_rules()
    rules["flat"]["max_age_days"] = 5.0
    plan = build_plan(scan_night(root), rules)
    assert all(e.status == "refused" and "5-day limit" in e.reason
               for e in plan.entries if e.filter == "B")


def test_sessions_make_separate_masters(tmp_path):
    root = small_night(tmp_path / "n")
    for i in range(3):
        write_frame(root / f"bias_next_{i}.fits", IMAGETYP="BIAS", EXPTIME=0.0,
                    DATE_OBS="2026-03-03T18:00:00")
    plan = build_plan(scan_night(root))
    biases = sorted(m.key for m in plan.masters.values() if m.kind == "bias")
    assert biases == ["bias_1x1_20x16_20260301", "bias_1x1_20x16_20260303"]
    # science of 2026-03-01 uses that night's bias; the other is unused and says so
    assert all(e.bias_key == "bias_1x1_20x16_20260301" for e in plan.entries)
    assert any("not used" in w for w in plan.masters["bias_1x1_20x16_20260303"].warnings)


def test_user_rules_file(tmp_path):
    f = tmp_path / "rules.toml"
    f.write_text("[flat]\nmin_frames = 10\n")
    rules = load_rules(f)
    assert rules["flat"]["min_frames"] == 10 and rules["bias"]["min_frames"] == 5
    plan = build_plan(scan_night(small_night(tmp_path / "n")), rules)
    flats = [m for m in plan.masters.values() if m.kind == "flat"]
    assert all(any("at least 10 recommended" in w for w in m.warnings) for m in flats)
    bad = tmp_path / "bad.toml"
    bad.write_text("[sky]\nx = 1\n")
    with pytest.raises(ValueError, match="bad.toml"):
        load_rules(bad)


@pytest.mark.realdata
def test_real_ngc2420_plan():
    if not CAHA.is_dir():
        pytest.skip(f"real data not found at {CAHA}")
    plan = build_plan(scan_night(CAHA))
    assert len(plan.entries) == 11 and not plan.refused()
    assert sorted(m.key for m in plan.masters.values()) == [
        "bias_1x1_1024x1024_20210318", "flat_B_1x1_1024x1024_20210318",
        "flat_V_1x1_1024x1024_20210318"]
    assert any("no darks" in w for w in plan.warnings)
    for e in plan.entries:
        assert e.flat_key == f"flat_{e.filter}_1x1_1024x1024_20210318"
        # flats were taken 10 days before the science frames
        assert any("10.2 days" in w for w in e.warnings)


def test_night_plan_text_shows_every_file_master_members_and_warnings_once():
    """tgp plan / --plan-only print each raw frame's classification (biases and flats too),
    the frames that make each master, and each warning once with the frames it concerns."""
    from pathlib import Path

    from tgpcore.calibration.plan import build_plan, format_night_plan
    from tgpcore.inventory import scan_night

    caha = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ngc2420_caha"
    if not caha.is_dir():
        pytest.skip(f"real data not found at {caha}")
    inv = scan_night(caha)
    text = format_night_plan(inv, build_plan(inv))
    for r in inv.records:
        assert r.relpath in text, r.relpath
    assert "from: uamA_0001.fits, uamA_0002.fits" in text
    assert text.count("no dark") == 1, text
    assert "(6 frames)" in text and "(5 frames)" in text
