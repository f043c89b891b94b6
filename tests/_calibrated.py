"""Helpers for tests that calibrate a simulated night without the flow machinery."""

from __future__ import annotations

from pathlib import Path

from tgpcore.calibration.plan import build_plan
from tgpcore.calibration.products import make_calibrated, make_master
from tgpcore.inventory import scan_night
from tgpcore.simulate import simulate_night


def frame_input(rec) -> dict:
    return {"path": rec.path, "hdu_index": rec.hdu_index or 0,
            "exptime_s": float(rec.exptime_s or 0.0), "summary": rec.header}


def build_masters(raw_dir: Path, out: Path):
    """Inventory, plan and every master of a night; return (inventory, plan, master paths)."""
    inv = scan_night(raw_dir)
    plan = build_plan(inv)
    recs = {r.path: r for r in inv.records}
    paths: dict[str, str] = {}
    for kind in ("bias", "dark", "flat"):
        for key, spec in plan.masters.items():
            if spec.kind != kind:
                continue
            res = make_master(kind, key, [frame_input(recs[p]) for p in spec.members],
                              str(out / "masters" / f"{key}.fits"),
                              bias_path=paths.get(spec.depends.get("bias")),
                              dark_path=paths.get(spec.depends.get("dark")))
            paths[key] = res["path"]
    return inv, plan, paths


def calibrate_entries(inv, plan, masters, out: Path, names=None, **kw) -> dict[str, dict]:
    """Calibrate the plan's frames (all, or those whose file name is in ``names``)."""
    recs = {r.path: r for r in inv.records}
    results = {}
    for e in plan.entries:
        name = Path(e.path).name
        if e.status != "ok" or (names is not None and name not in names):
            continue
        results[name] = make_calibrated(frame_input(recs[e.path]),
                                        str(out / "calibrated" / name), masters.get(e.bias_key),
                                        masters.get(e.dark_key), masters.get(e.flat_key), **kw)
    return results


def calibrated_night(root: Path, **simulate):
    """A simulated night (``simulate_night(root / "night", **simulate)``) with its masters and
    every frame calibrated under ``root / "out"``; return (truth, plan, masters, results)."""
    truth = simulate_night(root / "night", **simulate)
    inv, plan, masters = build_masters(truth.raw_dir, root / "out")
    results = calibrate_entries(inv, plan, masters, root / "out")
    return truth, plan, masters, results
