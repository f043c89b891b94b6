"""The science and strategy decisions each stage's planning makes in tgpcore (issue 23): stack
grouping, solving order and time limits, night labels, standards' fits and the reference
fallback, standard fields, and which photometry of a cluster is fitted."""

from __future__ import annotations

from pathlib import Path

from tgpcore.astrometry.plan import (
    SOLVER_TIMEOUTS_S,
    plan_solving,
    shares_wcs,
    solver_references,
    solver_timeouts,
)
from tgpcore.fitting.plan import GAIA, JOHNSON, fit_items, fit_label, primary_system
from tgpcore.photcal.plan import (
    bands_by_solution,
    expected_fits,
    fit_groups,
    night_of,
    reference_bands,
    standard_frames,
)
from tgpcore.photometry.plan import is_standard_stack, standard_stacks
from tgpcore.registration.plan import StackId, mosaic_groups, plan_stacks


def _rec(gk, filt, t):
    return {"group_key": gk, "filter": filt, "exptime_s": t}


def test_stacks_by_pointing_filter_and_exposure_class():
    recs = {"a": _rec("M67/p0/V", "V", 10), "b": _rec("M67/p0/V", "V", 100),
            "c": _rec("M67/p0/V", "V", 120), "d": _rec("M67/p0/B", "B", 60),
            "e": _rec("M67/p1/V", "V", 60), "f": _rec(None, "V", 60)}
    plan = plan_stacks(recs, list(recs), short_long_ratio=4.0)
    ids = {str(i.id): i.members for i in plan.items}
    assert ids == {"M67/p0/B/long": ("d",), "M67/p0/V/short": ("a",),
                   "M67/p0/V/long": ("b", "c"), "M67/p1/V/long": ("e",)}
    assert plan.rejected == {"f": "no group key (cluster/pointing/filter)"}
    # every stack of a pointing shares the pointing's frames (one reference frame)
    assert all(set(i.pointing_members) == {"a", "b", "c", "d"} for i in plan.items
               if i.id.pointing == "M67/p0")
    # lengths within the ratio: one class
    same = plan_stacks({"a": _rec("X/p/V", "V", 30), "b": _rec("X/p/V", "V", 100)}, ["a", "b"])
    assert [str(i.id) for i in same.items] == ["X/p/V/long"]


def test_stack_ids_parse_and_mosaic_groups():
    sid = StackId.parse("M67/p0/V/long")
    assert (sid.cluster, sid.pointing, sid.filter, sid.exposure_class) == ("M67", "M67/p0",
                                                                           "V", "long")
    assert str(sid) == "M67/p0/V/long"
    groups = mosaic_groups({"M67/p0/V/long": "a.fits", "M67/p1/V/long": "b.fits",
                            "M67/p0/B/long": "c.fits"})
    assert groups == {"M67/B/long": ["c.fits"], "M67/V/long": ["a.fits", "b.fits"]}


def test_solving_order_timeouts_and_references():
    stacks = {"M/p0/V/short": {"exposure_class": "short", "members": [1, 2, 3]},
              "M/p0/V/long": {"exposure_class": "long", "members": [1]},
              "M/p0/B/long": {"exposure_class": "long", "members": [1, 2]},
              "M/p1/V/long": {"exposure_class": "long", "members": [1]}}
    plan = plan_solving(stacks)
    # long before short, then the deepest stack first
    assert plan.attempts["M/p0"] == ["M/p0/B/long", "M/p0/V/long", "M/p0/V/short"]
    assert plan.rounds == 3 and plan.attempt("M/p1", 1) is None
    t = solver_timeouts(["header", "catalogue", "mine"])
    assert t["header"] < t["catalogue"] < t["solve-field"] < t["nova"]
    assert t["mine"] == max(SOLVER_TIMEOUTS_S.values())
    assert shares_wcs("M/p0/V/long", "M/p0/B/long", True)
    assert not shares_wcs("M/p0/B/long", "M/p0/B/long", True)
    assert solver_references("g.ecsv", "g.ecsv") == ["g.ecsv"]
    assert solver_references("g.ecsv", "r.csv") == ["g.ecsv", "r.csv"]
    assert solver_references(None, None) is None


def test_night_labels_change_at_noon_ut():
    assert night_of(59999.9) == night_of(60000.3) == "MJD59999"  # one night across midnight
    assert night_of(60000.6) == night_of(60001.4) == "MJD60000"
    assert night_of(None) == night_of(float("nan")) == "night"


def test_standards_grouping_and_reference_fallback():
    recs = [{"path": "s1", "kind": "standard", "status": "accepted", "filter": "V",
             "airmass": 1.2, "mjd": 60000.6},
            {"path": "s2", "kind": "standard", "status": "accepted", "filter": "B",
             "airmass": 1.5, "mjd": 60000.7},
            {"path": "s3", "kind": "standard", "status": "rejected", "filter": "U",
             "mjd": 60000.7},
            {"path": "c1", "kind": "science", "status": "accepted", "filter": "V"}]
    frames = standard_frames(recs, {"s1": "cal/s1.fits"})  # s2 was not calibrated
    assert [(f.raw, f.calibrated, f.filter, f.night) for f in frames] == [
        ("s1", "cal/s1.fits", "V", "MJD60000")]
    assert expected_fits(recs) == [("MJD60000", "B"), ("MJD60000", "V")]
    assert fit_groups([{"night": "n", "filter": "V"}, {"night": "n", "filter": "V"}]) == [
        ("n", "V")]
    assert bands_by_solution({"MJD1/V": 1, "MJD2/V": 2, "MJD1/B": 3}) == {"B": 3, "V": 1}
    assert reference_bands(["B", "V", "U"], {"V": 1}, ["B", "V"], True) == ("B",)
    assert reference_bands(["B", "V"], {"V": 1}, ["B", "V"], False) == ()
    assert reference_bands(["B", "V"], {"B": 1, "V": 1}, ["B", "V"], True) == ()


def test_standard_fields_are_not_measured_as_stacks():
    kinds = {"a": "standard", "b": "standard", "c": "science", "d": None}
    assert is_standard_stack(["a", "b"], kinds)
    assert not is_standard_stack(["a", "c"], kinds)
    assert not is_standard_stack(["a", "d"], kinds)  # a frame of unknown kind
    assert not is_standard_stack(["zz"], kinds)  # no member known
    assert standard_stacks({"S/p/V/long": {"members": ["a"]}, "C/p/V/long": {"members": ["c"]}},
                           kinds) == {"S/p/V/long"}


def test_our_photometry_is_fitted_first_and_gaia_is_the_check():
    root = Path("fit")
    both = fit_items("M67", "m.ecsv", "members.ecsv", "gaia.ecsv", root)
    assert [(i.system, i.catalog, i.members, i.out_dir) for i in both] == [
        (JOHNSON, "m.ecsv", None, root / "M67"),
        (GAIA, "gaia.ecsv", "members.ecsv", root / "M67_gaia")]
    only_gaia = fit_items("M67", None, "members.ecsv", "gaia.ecsv", root)
    assert [(i.system, i.out_dir) for i in only_gaia] == [(GAIA, root / "M67")]
    assert fit_items("M67", None, None, "gaia.ecsv", root) == []
    assert primary_system([GAIA, JOHNSON]) == JOHNSON
    assert primary_system([GAIA]) == GAIA and primary_system([]) is None


def test_a_fit_is_named_by_the_bands_it_used():
    """A night without U is "our B, V" on the console and in the alarms, not "our U, B, V"."""
    assert fit_label(JOHNSON, ["V", "B-V"]) == "our B, V"
    assert fit_label(JOHNSON, ["V", "B-V", "U-B"]) == "our U, B, V"
    assert fit_label(GAIA, ["G", "BP-RP"]) == "Gaia G, BP, RP"
    assert fit_label(JOHNSON) == "our U, B, V"  # the fit's file is unreadable: the system
