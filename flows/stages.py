"""The stages of a full run, in order, and which of them are built."""

from __future__ import annotations

# (name, description). Order is the data flow of DESIGN.md.
STAGES: list[tuple[str, str]] = [
    ("inventory", "classify the raw frames by their headers"),
    ("plan", "calibration plan: which masters each frame uses"),
    ("calibrate", "masters and calibrated frames"),
    ("register", "align and stack the frames of each pointing"),
    ("solve", "plate solving (WCS)"),
    ("mosaic", "mosaic of the pointings per cluster and filter"),
    ("photometry", "source detection and photometry"),
    ("photcal", "photometric calibration"),
    ("catalogs", "Gaia / reference cross-match"),
    ("membership", "cluster membership"),
    ("crossmatch", "our calibrated catalogue matched to Gaia, with memberships"),
    ("isochrone_fit", "isochrone fit: age, distance, reddening, metallicity"),
    ("report", "plots and the night report"),
]
STAGE_NAMES = [name for name, _ in STAGES]
# Stages that cannot run when another has failed (only those that may fail without stopping
# the run are listed: a failing image stage stops the run).
DEPENDS: dict[str, tuple[str, ...]] = {
    "membership": ("catalogs",),
    "crossmatch": ("catalogs",),
    "isochrone_fit": ("membership",),
}
BUILT = {"inventory", "plan", "calibrate", "register", "solve", "mosaic", "photometry",
         "photcal", "catalogs", "membership", "crossmatch", "isochrone_fit", "report"}


def stage_range(from_stage: str | None, to_stage: str | None) -> list[str]:
    """The stage names from ``from_stage`` to ``to_stage`` inclusive (all by default)."""
    names = STAGE_NAMES
    for s in (from_stage, to_stage):
        if s is not None and s not in names:
            raise ValueError(f"unknown stage {s!r}; stages are: {', '.join(names)}")
    i = names.index(from_stage) if from_stage else 0
    j = names.index(to_stage) if to_stage else len(names) - 1
    if j < i:
        raise ValueError(f"--to-stage {to_stage} comes before --from-stage {from_stage}")
    return names[i:j + 1]
