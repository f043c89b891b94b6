"""How a night's stacks are plate-solved: one pointing at a time, its stacks in an order, each
solver with its time limit, and the WCS of the first stack that solves given to its siblings
(the stacks of one pointing share the pointing's reference grid)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Time limit of each solver of the cascade (s): the header's WCS is checked in seconds, the
# catalogue solver needs a minute on a crowded field, solve-field and nova.astrometry.net more.
SOLVER_TIMEOUTS_S: dict[str, float] = {"header": 5.0, "catalogue": 60.0, "solve-field": 120.0,
                                       "nova": 300.0}


@dataclass(frozen=True)
class SolvePlan:
    """Per pointing, its stacks in the order they are tried (the first to solve gives the
    WCS of all)."""

    attempts: dict[str, list[str]]

    @property
    def rounds(self) -> int:
        """How many rounds of attempts at most (the longest list)."""
        return max((len(v) for v in self.attempts.values()), default=0)

    def attempt(self, pointing: str, round_: int) -> str | None:
        """The stack to try for ``pointing`` in round ``round_``, or None."""
        sids = self.attempts[pointing]
        return sids[round_] if round_ < len(sids) else None


def plan_solving(stacks: Mapping[str, Mapping[str, Any]]) -> SolvePlan:
    """Group stacks (id ``cluster/pointing/filter/class`` -> info with ``exposure_class`` and
    ``members``) by pointing; try long exposures before short, then the stack of most frames
    (the deepest), then by name."""
    by_pointing: dict[str, list[str]] = {}
    for sid in stacks:
        by_pointing.setdefault(sid.rsplit("/", 2)[0], []).append(sid)
    for sids in by_pointing.values():
        sids.sort(key=lambda k: (stacks[k]["exposure_class"] != "long",
                                 -len(stacks[k]["members"]), k))
    return SolvePlan(by_pointing)


def solver_timeouts(solvers: list[str]) -> dict[str, float]:
    """The time limit of each solver asked for (an unknown solver gets the longest)."""
    longest = max(SOLVER_TIMEOUTS_S.values())
    return {**SOLVER_TIMEOUTS_S, **{s: SOLVER_TIMEOUTS_S.get(s, longest) for s in solvers}}


def shares_wcs(stack_id: str, solved_on: str, has_header: bool) -> bool:
    """Whether a stack takes the WCS solved on a sibling (same pointing, another stack)."""
    return stack_id != solved_on and has_header


def solver_references(gaia_file: str | None, reference_catalog: str | None) -> list[str] | None:
    """The plate solver's references: the run's Gaia table first (the more precise and, for a
    member list, the denser in a cluster core), then the reference catalogue; no repeats."""
    refs = list(dict.fromkeys(r for r in (gaia_file, reference_catalog) if r))
    return refs or None
