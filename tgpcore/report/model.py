"""What a night report holds, independent of how it is rendered: sections of notes, tables
and figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    """An image for the report (PNG bytes; embedded, never linked)."""

    title: str
    png: bytes
    caption: str = ""


@dataclass
class Table:
    """A table of plain values; a column named ``status`` is coloured by its value."""

    columns: list[str]
    rows: list[list[Any]]
    title: str = ""
    note: str = ""


@dataclass
class Section:
    """One section of the report.

    ``stage`` names the pipeline stage whose products the section shows, and
    ``stage_status`` how that stage ended (``succeeded``, ``failed``, ``not_built``,
    ``skipped``, ``running`` or ``not run``); the renderer shows it as a badge.
    """

    key: str
    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    stage: str | None = None
    stage_status: str | None = None
    #: tables folded away (QC detail a reader opens when needed)
    folded: bool = False
    #: figures shown large (science and solution plots) rather than as thumbnails
    large_figures: bool = False

    @property
    def empty(self) -> bool:
        """True when the section has nothing but notes."""
        return not self.tables and not self.figures


@dataclass
class Report:
    """A whole night report."""

    title: str
    run_id: str
    generated_at: str
    alerts: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    alarms: list[dict[str, Any]] = field(default_factory=list)

    def figures(self) -> list[Figure]:
        """Every figure of every section, in order."""
        return [f for s in self.sections for f in s.figures]
