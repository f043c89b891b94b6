"""The stages of a run, as data: what each needs, what it makes, and the function that runs it.

``full_run`` and every standalone flow walk this one table (:mod:`flows.walk`) from any stage
to any stage. A stage's ``run`` is ``"module:function"``, taking the walk's
:class:`flows.walk.NightRun` and returning the stage's outcome; it is imported only when the
stage runs (so this module stays light for the command line).

- ``needs``: stages whose outcome this one cannot do without. They run first (their products
  are reused when they exist); if one failed or was skipped, this stage is skipped.
- ``uses``: stages whose outcome this one takes when there is one (a failed solve leaves the
  photometry with unsolved stacks, not without stacks).
- ``result``: the key of the run's result under which the outcome goes.
- ``critical``: a failure of this stage fails the run (the night has nothing to measure).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """One stage of the table."""

    name: str
    description: str
    run: str
    needs: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    result: str | None = None
    critical: bool = False


TABLE: tuple[Stage, ...] = (
    Stage("inventory", "classify the raw frames by their headers",
          "flows.inventory:inventory_step", result="inventory", critical=True),
    Stage("plan", "calibration plan: which masters each frame uses", "flows.plan:plan_step",
          needs=("inventory",), result="plan", critical=True),
    Stage("calibrate", "masters and calibrated frames", "flows.calibrate:calibrate_step",
          needs=("inventory", "plan"), result="calibration", critical=True),
    Stage("register", "align and stack the frames of each pointing",
          "flows.register:register_step", needs=("inventory", "calibrate"),
          result="registration", critical=True),
    Stage("solve", "plate solving (WCS)", "flows.register:solve_step", needs=("register",),
          result="solve"),
    Stage("mosaic", "mosaic of the pointings per cluster and filter",
          "flows.register:mosaic_step", needs=("register", "solve"), result="mosaic"),
    Stage("photometry", "source detection and photometry", "flows.photometry:photometry_step",
          needs=("inventory", "register"), uses=("solve",), result="photometry",
          critical=True),
    Stage("photcal", "photometric calibration", "flows.photcal:photcal_step",
          needs=("inventory", "calibrate", "photometry"), uses=("solve",), result="photcal"),
    Stage("catalogs", "Gaia / reference cross-match", "flows.catalogs:catalogs_step",
          needs=("inventory",), result="catalogs"),
    Stage("membership", "cluster membership", "flows.membership:membership_step",
          needs=("catalogs",), result="membership"),
    Stage("crossmatch", "our calibrated catalogue matched to Gaia, with memberships",
          "flows.crossmatch:crossmatch_step", needs=("inventory", "catalogs"),
          uses=("photcal", "membership"), result="crossmatch"),
    Stage("isochrone_fit", "isochrone fit: age, distance, reddening, metallicity",
          "flows.isochrone_fit:isochrone_fit_step", needs=("membership",),
          uses=("catalogs", "crossmatch"), result="isochrone_fit"),
    Stage("report", "plots and the night report", "flows.report:report_step", result="report"),
)
BY_NAME = {s.name: s for s in TABLE}
STAGES: list[tuple[str, str]] = [(s.name, s.description) for s in TABLE]
STAGE_NAMES = [s.name for s in TABLE]


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


def with_prerequisites(names: list[str]) -> list[str]:
    """``names`` and every stage they need (recursively), in the table's order."""
    want = set(names)
    for s in reversed(TABLE):
        if s.name in want:
            want.update(s.needs)
    return [s.name for s in TABLE if s.name in want]
