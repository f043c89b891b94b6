"""Group science frames into (cluster, pointing, filter).

Cluster names come from OBJECT, tolerating common typos ('NCG2420 V' is NGC 2420 in V);
pointings come from the header RA/DEC (frames within a tolerance share a pointing). A small TOML
mapping file lets a user override both.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

# Canonical catalogue prefix -> spellings seen in OBJECT keywords.
CATALOGUE_PREFIXES: dict[str, tuple[str, ...]] = {
    "NGC": ("NGC",),
    "IC": ("IC",),
    "M": ("M", "MESSIER"),
    "Melotte": ("MEL", "MELOTTE"),
    "Collinder": ("CR", "COL", "COLLINDER"),
    "Berkeley": ("BE", "BERK", "BERKELEY"),
    "King": ("KING",),
    "Trumpler": ("TR", "TRUMPLER"),
    "Stock": ("STOCK",),
    "Czernik": ("CZ", "CZERNIK"),
    "Ruprecht": ("RU", "RUP", "RUPRECHT"),
    "Haffner": ("HAF", "HAFFNER"),
    "Basel": ("BASEL",),
    "SA": ("SA",),
    "PG": ("PG",),
}
_FILTER_TOKENS = {"U", "B", "V", "R", "I", "UX", "BX", "CLEAR", "JOHNSONU", "JOHNSONB",
                  "JOHNSONV", "JOHNSONR", "JOHNSONI"}
_POINTING_TOKEN = re.compile(r"^(?:OFF(?:SET)?|P(?:OS)?|FIELD|PT)[-_]?(\d+)$")
_EXPOSURE_TOKEN = re.compile(r"^\d+(\.\d+)?S$")


def _prefix_lookup(token: str) -> str | None:
    for canon, spellings in CATALOGUE_PREFIXES.items():
        if token in spellings:
            return canon
    # Transposed letters ('NCG', 'GNC') of a 3+ letter prefix are typos of that prefix.
    if len(token) >= 3:
        for canon, spellings in CATALOGUE_PREFIXES.items():
            if any(len(s) >= 3 and sorted(s) == sorted(token) for s in spellings):
                return canon
    return None


@dataclass(frozen=True)
class ObjectName:
    """A parsed OBJECT value: the cluster it names and any pointing hint it carries."""

    cluster: str
    pointing_hint: str | None = None


def parse_object_name(obj: str | None) -> ObjectName | None:
    """Turn an OBJECT value into a canonical cluster name.

    'NCG2420 V' -> NGC2420; 'ngc 2420 off1' -> NGC2420 with pointing hint 'off1';
    'SA 98' -> SA98; unknown names are kept, upper-cased, without filter or exposure tokens.
    Returns ``None`` for an empty name.
    """
    if obj is None:
        return None
    text = re.sub(r"[\[\]()]", " ", str(obj)).strip().upper()
    tokens = [t for t in re.split(r"[\s,;_]+", text) if t]
    hint = None
    kept = []
    for tok in tokens:
        m = _POINTING_TOKEN.match(tok)
        if m and kept:
            hint = f"off{int(m.group(1))}"
            continue
        if kept and (tok in _FILTER_TOKENS or _EXPOSURE_TOKEN.match(tok)):
            continue
        kept.append(tok)
    if not kept:
        return None
    joined = " ".join(kept)
    m = re.match(r"^([A-Z]+)[\s_\-]*(\d+[A-Z]?)\b", joined)
    if m:
        prefix = _prefix_lookup(m.group(1))
        if prefix is not None:
            return ObjectName(cluster=f"{prefix}{m.group(2)}", pointing_hint=hint)
    cleaned = re.sub(r"\s+", "-", joined)
    return ObjectName(cluster=cleaned, pointing_hint=hint)


@dataclass
class GroupingOverrides:
    """User overrides read from a TOML mapping file.

    ``[objects]`` maps OBJECT values (case-insensitive) to cluster names; ``[files."name"]``
    tables set ``cluster``, ``pointing``, ``kind`` or ``filter`` for one file (by file name or
    path relative to the night's root).
    """

    objects: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    source: str | None = None

    def for_file(self, relpath: str) -> dict[str, str]:
        """Overrides for one file, matched by relative path or bare file name."""
        return self.files.get(relpath) or self.files.get(Path(relpath).name) or {}

    def cluster_for_object(self, obj: str | None) -> str | None:
        """The cluster an OBJECT value is mapped to, if the user mapped it."""
        if obj is None:
            return None
        return self.objects.get(str(obj).strip().upper())


def load_grouping_overrides(path: str | Path | None) -> GroupingOverrides:
    """Read a grouping override file; ``None`` gives empty overrides.

    Raises
    ------
    ValueError
        If the file is not valid TOML or has entries of the wrong type; the message names it.
    """
    if path is None:
        return GroupingOverrides()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"grouping file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"grouping file {path} is not valid TOML: {exc}") from exc
    objects = raw.get("objects", {})
    files = raw.get("files", {})
    if not isinstance(objects, dict) or not all(isinstance(v, str) for v in objects.values()):
        raise ValueError(f"grouping file {path}: [objects] must map names to cluster names")
    allowed = {"cluster", "pointing", "kind", "filter"}
    for name, entry in files.items():
        if not isinstance(entry, dict) or set(entry) - allowed:
            raise ValueError(f"grouping file {path}: [files.{name!r}] may only set "
                             f"{sorted(allowed)}")
    return GroupingOverrides(objects={k.strip().upper(): v for k, v in objects.items()},
                             files={k: dict(v) for k, v in files.items()}, source=str(path))


def angular_separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance in degrees (haversine; inputs in degrees)."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def assign_pointings(positions: list[tuple[float, float] | None], tolerance_arcsec: float
                     ) -> list[str | None]:
    """Label frames of one cluster with pointings 'p0', 'p1', … from their RA/DEC.

    Frames are taken in the given order (sort them by time first). A frame joins the first
    pointing whose centre (running mean of its members) lies within ``tolerance_arcsec``; else it
    opens a new pointing. Frames without a position get ``None``.
    """
    centres: list[list[float]] = []  # ra, dec, n
    labels: list[str | None] = []
    tol = tolerance_arcsec / 3600.0
    for pos in positions:
        if pos is None:
            labels.append(None)
            continue
        ra, dec = pos
        for i, (cra, cdec, n) in enumerate(centres):
            if angular_separation_deg(ra, dec, cra, cdec) <= tol:
                # Running mean; RA wrap is handled by averaging the offset.
                dra = (ra - cra + 180.0) % 360.0 - 180.0
                centres[i] = [(cra + dra / (n + 1)) % 360.0, cdec + (dec - cdec) / (n + 1), n + 1]
                labels.append(f"p{i}")
                break
        else:
            centres.append([ra, dec, 1])
            labels.append(f"p{len(centres) - 1}")
    return labels
