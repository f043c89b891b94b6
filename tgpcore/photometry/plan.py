"""Which stacks the photometry stage measures: every stack but those of standard-star fields
(the photometric calibration measures their single frames, each at its own airmass)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_standard_stack(members: list[str], kinds: Mapping[str, str | None]) -> bool:
    """Whether a stack is of a standard field: every member frame whose kind is known is a
    standard (a stack with no known member is not)."""
    found = {kinds[m] for m in members if m in kinds}
    return found == {"standard"}


def standard_stacks(stacks: Mapping[str, Mapping[str, Any]], kinds: Mapping[str, str | None]
                    ) -> set[str]:
    """Ids of the stacks of standard fields (``kinds``: raw path -> inventory kind)."""
    return {sid for sid, st in stacks.items() if is_standard_stack(st.get("members", []), kinds)}
