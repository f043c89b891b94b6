"""Reading a run folder's files for the report: a JSON summary or a PNG, or None when the
file is missing or not what it says it is (a report never fails on one bad file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_png(path: Path) -> bytes | None:
    """The bytes of a PNG file, or None."""
    try:
        content = path.read_bytes()
    except OSError:
        return None
    return content if content.startswith(PNG_MAGIC) else None
