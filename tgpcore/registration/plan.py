"""Which stacks a night makes: the calibrated frames grouped by pointing, filter and exposure
class (the registration stage's work items)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tgpcore.registration.products import exposure_classes


@dataclass(frozen=True)
class StackId:
    """A stack's name: ``cluster/pointing/filter/class`` (the pointing is ``cluster/field``)."""

    pointing: str
    filter: str
    exposure_class: str

    @property
    def cluster(self) -> str:
        """The cluster of the stack's pointing."""
        return self.pointing.split("/")[0]

    def __str__(self) -> str:
        return f"{self.pointing}/{self.filter}/{self.exposure_class}"

    @classmethod
    def parse(cls, text: str) -> StackId:
        """The id of ``cluster/pointing/filter/class``."""
        pointing, filt, cls_ = text.rsplit("/", 2)
        return cls(pointing, filt, cls_)


@dataclass(frozen=True)
class StackItem:
    """One stack to make: its id and its raw frames (all frames of the pointing share the
    pointing's reference frame)."""

    id: StackId
    members: tuple[str, ...]
    pointing_members: tuple[str, ...]


@dataclass
class StackPlan:
    """The stacks of a night, and the frames that cannot be stacked (with why)."""

    items: list[StackItem] = field(default_factory=list)
    pointings: dict[str, list[str]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)


def plan_stacks(records: Mapping[str, Mapping[str, Any]], frames: list[str],
                short_long_ratio: float = 4.0) -> StackPlan:
    """Group frames into stacks by pointing, filter and exposure class.

    Parameters
    ----------
    records : mapping
        Raw path -> inventory record (``group_key`` ``cluster/pointing/filter``, ``filter``,
        ``exptime_s``).
    frames : list of str
        The raw paths that were calibrated.
    short_long_ratio : float
        Short and long exposures of one filter are stacked apart when their lengths differ by
        more than this (:func:`tgpcore.registration.products.exposure_classes`).
    """
    out = StackPlan()
    for raw in sorted(frames):
        gk = records[raw].get("group_key")
        if not gk:
            out.rejected[raw] = "no group key (cluster/pointing/filter)"
            continue
        out.pointings.setdefault(gk.rsplit("/", 1)[0], []).append(raw)
    for pointing, raws in out.pointings.items():
        by_filter: dict[str, list[str]] = {}
        for raw in raws:
            by_filter.setdefault(str(records[raw].get("filter")), []).append(raw)
        for filt, members in sorted(by_filter.items()):
            cls = exposure_classes({r: float(records[r].get("exptime_s") or 0.0)
                                    for r in members}, short_long_ratio)
            for c in ("short", "long"):
                chosen = tuple(r for r in members if cls[r] == c)
                if chosen:
                    out.items.append(StackItem(StackId(pointing, filt, c), chosen, tuple(raws)))
    return out


def mosaic_groups(stack_paths: Mapping[str, str]) -> dict[str, list[str]]:
    """Solved stacks (id -> path) grouped into mosaics ``cluster/filter/class``."""
    groups: dict[str, list[str]] = {}
    for sid, path in stack_paths.items():
        s = StackId.parse(sid)
        groups.setdefault(f"{s.cluster}/{s.filter}/{s.exposure_class}", []).append(path)
    return dict(sorted(groups.items()))
