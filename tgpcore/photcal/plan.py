"""The photometric calibration's work items: which frames are standards, how they group into
fits (night and filter), and which bands of a cluster fall back to the reference catalogue."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


def night_of(mjd: float | None) -> str:
    """Label of the observing night of an MJD (the MJD at the previous noon UT)."""
    if mjd is None or not math.isfinite(float(mjd)):
        return "night"
    return f"MJD{int(math.floor(float(mjd) - 0.5))}"


@dataclass(frozen=True)
class StandardFrame:
    """One calibrated frame of a standard field to measure."""

    raw: str
    calibrated: str
    filter: str | None
    airmass: float | None
    night: str


def standard_frames(records: Iterable[Mapping[str, Any]], calibrated: Mapping[str, str]
                    ) -> list[StandardFrame]:
    """The accepted standard-field frames that were calibrated."""
    out = []
    for r in records:
        if r.get("kind") != "standard" or r.get("status") != "accepted":
            continue
        cal = calibrated.get(r["path"])
        if cal is not None:
            out.append(StandardFrame(r["path"], cal, r.get("filter"), r.get("airmass"),
                                     night_of(r.get("mjd"))))
    return out


def expected_fits(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(night, filter) of every accepted standard frame: the fits the night should give."""
    return sorted({(night_of(r.get("mjd")), r.get("filter")) for r in records
                   if r.get("kind") == "standard" and r.get("status") == "accepted"})


def fit_groups(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(night, filter) of the standard measurements: one fit each."""
    return sorted({(r["night"], r["filter"]) for r in rows})


def bands_by_solution(solutions: Mapping[str, Any]) -> dict[str, Any]:
    """Band -> solution from ``night/filter`` keys (the first night of each band; one night
    per run in practice)."""
    out: dict[str, Any] = {}
    for key, s in sorted(solutions.items()):
        out.setdefault(key.split("/")[1], s)
    return out


def reference_bands(bands: Iterable[str], solved: Iterable[str], reference_bands: Iterable[str],
                    have_reference: bool) -> tuple[str, ...]:
    """Bands of a cluster's catalogue that the reference catalogue must calibrate: those
    without a solution from standards, among the bands the reference calibrates."""
    missing = [b for b in bands if b not in set(solved)]
    if not missing or not have_reference:
        return ()
    return tuple(b for b in reference_bands if b in missing)
