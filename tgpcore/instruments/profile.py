"""Load instrument profiles (TOML) and pick the one that fits a header."""

from __future__ import annotations

import copy
import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from astropy.io.fits import Header

PROFILE_DIR = "profiles"


class ProfileError(ValueError):
    """A profile file is missing, unreadable or inconsistent."""


def _squash(value: str) -> str:
    """Lower-case, trim and collapse blanks, underscores and dashes to one space."""
    return re.sub(r"[\s_\-]+", " ", str(value).strip().lower()).strip()


@dataclass(frozen=True)
class InstrumentProfile:
    """One instrument's header conventions.

    Attributes
    ----------
    name : str
        Profile name (the TOML file's stem for packaged profiles).
    keywords : dict
        Quantity name -> ordered list of header keywords that may carry it.
    kind_aliases, filter_aliases : dict
        Canonical value -> aliases (already squashed).
    match : dict
        Header keyword -> glob patterns; a header matching every entry selects the profile.
    rules : dict
        Grouping rules (standard-field patterns, pointing tolerance, coordinate equinox…).
    detector : dict
        Detector facts (pixel scale, saturation) used when headers are silent.
    source : str
        Where the profile was read from.
    """

    name: str
    description: str
    keywords: dict[str, list[str]]
    kind_aliases: dict[str, list[str]]
    filter_aliases: dict[str, list[str]]
    match: dict[str, list[str]] = field(default_factory=dict)
    rules: dict[str, Any] = field(default_factory=dict)
    detector: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    # ----------------------------------------------------------------- header access
    def lookup(self, header: Header, quantity: str) -> tuple[str | None, Any]:
        """Return ``(keyword, value)`` of the first keyword for ``quantity`` present in header.

        Blank string values count as absent. Returns ``(None, None)`` when none is present.
        """
        for key in self.keywords.get(quantity, []):
            try:
                if key in header:
                    value = header[key]
                else:
                    continue
            except Exception:  # noqa: BLE001 - a mangled card must not stop classification
                continue
            if isinstance(value, str) and not value.strip():
                continue
            if value is None or type(value).__name__ == "Undefined":
                continue
            return key, value
        return None, None

    def canonical_kind(self, value: Any) -> str | None:
        """Map a frame-type header value to 'bias', 'dark', 'flat', 'science' or 'standard'."""
        squashed = _squash(value)
        for kind, aliases in self.kind_aliases.items():
            if squashed in aliases:
                return kind
        return None

    def canonical_filter(self, value: Any) -> str | None:
        """Map a filter header value to a canonical filter name, or ``None`` if unknown."""
        squashed = _squash(value)
        candidates = [squashed]
        stripped = squashed
        for prefix in self.rules.get("filter_prefixes", []):
            stripped = re.sub(rf"\b{re.escape(prefix)}\b", " ", stripped)
        stripped = _squash(stripped)
        candidates.append(stripped)
        candidates.append(squashed.replace(" ", ""))
        for cand in candidates:
            for name, aliases in self.filter_aliases.items():
                if cand in aliases or cand == name.lower():
                    return name
        return None

    def matches(self, header: Header) -> bool:
        """True when every ``[match]`` keyword of the profile fits the header."""
        if not self.match:
            return False
        for key, patterns in self.match.items():
            try:
                value = str(header.get(key, "")).strip()
            except Exception:  # noqa: BLE001
                return False
            if not any(fnmatch.fnmatchcase(value.upper(), p.upper()) for p in patterns):
                return False
        return True

    def is_standard_field(self, object_name: str | None) -> bool:
        """True when an OBJECT value names a standard-star field (profile regexes)."""
        if not object_name:
            return False
        name = str(object_name).strip().upper()
        return any(re.match(p, name, flags=re.IGNORECASE) for p in
                   self.rules.get("standard_fields", []))


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ProfileError(f"instrument profile not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"instrument profile {path} is not valid TOML: {exc}") from exc


def _packaged_path(name: str) -> Path:
    return Path(str(resources.files("tgpcore.instruments").joinpath(PROFILE_DIR, f"{name}.toml")))


def _resolve_raw(name_or_path: str | Path, seen: tuple = ()) -> tuple[dict, str]:
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = _packaged_path(str(name_or_path))
        if not path.is_file():
            raise ProfileError(f"unknown instrument profile {str(name_or_path)!r}: packaged "
                               f"profiles are {', '.join(available_profiles())}; a profile "
                               "of your own is given as the path of its .toml file")
    raw = _read_toml(path)
    base = raw.get("profile", {}).get("base")
    if base:
        if base in seen:
            raise ProfileError(f"instrument profile {path}: circular base {base!r}")
        base_raw, _ = _resolve_raw(base, seen + (base,))
        # Keyword lists and aliases of a child replace the base's entry by entry; value
        # aliases are added to the base's, so that generic spellings keep working.
        merged = _merge(base_raw, {k: v for k, v in raw.items() if k != "values"})
        for group, entries in raw.get("values", {}).items():
            target = merged.setdefault("values", {}).setdefault(group, {})
            for canon, aliases in entries.items():
                target[canon] = list(dict.fromkeys(list(target.get(canon, [])) + list(aliases)))
        merged.setdefault("profile", {})["name"] = raw.get("profile", {}).get("name", path.stem)
        merged["profile"]["description"] = raw.get("profile", {}).get("description", "")
        merged["match"] = raw.get("match", {})
        raw = merged
    return raw, str(path)


def _from_raw(raw: dict, source: str) -> InstrumentProfile:
    meta = raw.get("profile", {})
    keywords = {k: [str(x) for x in v] for k, v in raw.get("keywords", {}).items()}
    values = raw.get("values", {})
    kinds = {k: [_squash(a) for a in v] + [_squash(k)] for k, v in values.get("kind", {}).items()}
    filters = {k: [_squash(a) for a in v] for k, v in values.get("filter", {}).items()}
    unknown = set(kinds) - {"bias", "dark", "flat", "science", "standard"}
    if unknown:
        raise ProfileError(f"instrument profile {source}: unknown frame kinds {sorted(unknown)}")
    return InstrumentProfile(
        name=str(meta.get("name", Path(source).stem)),
        description=str(meta.get("description", "")),
        keywords=keywords,
        kind_aliases=kinds,
        filter_aliases=filters,
        match={k: [str(p) for p in (v if isinstance(v, list) else [v])]
               for k, v in raw.get("match", {}).items()},
        rules=dict(raw.get("rules", {})),
        detector=dict(raw.get("detector", {})),
        source=source,
    )


@lru_cache(maxsize=64)
def load_profile(name_or_path: str | Path) -> InstrumentProfile:
    """Load a packaged profile by name (``"caha_cafos"``) or a user profile by ``.toml`` path.

    Raises
    ------
    ProfileError
        If the file is missing, not TOML, or inconsistent.
    """
    raw, source = _resolve_raw(name_or_path)
    return _from_raw(raw, source)


def resolve_profile(given: str | Path | InstrumentProfile | None,
                    recorded: str | None = None) -> InstrumentProfile:
    """The profile to use for products of a night.

    The profile the user gave (a packaged name or a ``.toml`` path, or a loaded profile)
    wins; else the name the inventory recorded for the frames (auto-selected, hence
    packaged); else ``generic``. A recorded name is a profile's ``name``, which for a user's
    file need not be a packaged profile: it is never looked up in place of the file.

    Raises
    ------
    ProfileError
        If the given or recorded profile cannot be loaded (the message says which).
    """
    if isinstance(given, InstrumentProfile):
        return given
    if given:
        return load_profile(given)
    return load_profile(recorded or "generic")


def available_profiles() -> list[str]:
    """Names of the packaged profiles."""
    folder = resources.files("tgpcore.instruments").joinpath(PROFILE_DIR)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def select_profile(header: Header, candidates: list[InstrumentProfile] | None = None
                   ) -> InstrumentProfile:
    """Pick the profile whose ``[match]`` fits the header (TELESCOP/INSTRUME), else generic."""
    if candidates is None:
        candidates = [load_profile(n) for n in available_profiles()]
    for prof in candidates:
        if prof.matches(header):
            return prof
    return load_profile("generic")
