"""Inventory of a raw night: classify every file by its headers.

Each file under the night's root gets a :class:`FrameRecord`: accepted with its kind, filter,
exposure, cluster, pointing and group, or rejected with the reason. Nothing is guessed: a frame
that the headers (through the instrument profile) and the known folder conventions cannot
classify is rejected and said why. No file is ever fatal to the inventory.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from astropy.io import fits

from tgpcore.grouping import (
    GroupingOverrides,
    assign_pointings,
    load_grouping_overrides,
    parse_object_name,
)
from tgpcore.instruments.folders import classify_by_folder
from tgpcore.instruments.profile import InstrumentProfile, load_profile, select_profile
from tgpcore.io.checksum import sha256_file
from tgpcore.io.header import HeaderSummary, normalise_header

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.fz", ".fz")
KINDS = ("bias", "dark", "flat", "science", "standard")


@dataclass
class FrameRecord:
    """One file of the night, as the inventory saw it.

    ``path`` is absolute; ``relpath`` is relative to the night's root. ``status`` is
    'accepted' or 'rejected' (then ``reason`` says why). ``sources`` says where each
    classification came from ('header:IMAGETYP', 'folder:tgp2020', 'override', …).
    """

    path: str
    relpath: str
    status: str = "accepted"
    reason: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    hdu_index: int | None = None
    profile: str | None = None
    kind: str = "unknown"
    filter: str | None = None
    exptime_s: float | None = None
    object: str | None = None
    cluster: str | None = None
    pointing: str | None = None
    group_key: str | None = None
    binning: str | None = None
    naxis1: int | None = None
    naxis2: int | None = None
    date_obs: str | None = None
    mjd: float | None = None
    airmass: float | None = None
    ra_deg: float | None = None
    dec_deg: float | None = None
    header: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> FrameRecord:
        """Mark the frame rejected with a reason and return it."""
        self.status = "rejected"
        self.reason = reason
        return self

    def db_record(self) -> dict[str, Any]:
        """The columns of the run database's ``frames`` table."""
        header = dict(self.header)
        header["sources"] = self.sources
        header["notes"] = self.notes
        header["hdu_index"] = self.hdu_index
        header["mjd"] = self.mjd
        header["ra_deg"] = self.ra_deg
        header["dec_deg"] = self.dec_deg
        return {
            "path": self.path, "sha256": self.sha256, "size_bytes": self.size_bytes,
            "kind": self.kind, "filter": self.filter, "exptime_s": self.exptime_s,
            "object": self.object, "cluster": self.cluster, "pointing": self.pointing,
            "group_key": self.group_key, "binning": self.binning, "naxis1": self.naxis1,
            "naxis2": self.naxis2, "date_obs": self.date_obs, "airmass": self.airmass,
            "profile": self.profile, "header": header, "status": self.status,
            "reason": self.reason,
        }


@dataclass
class Inventory:
    """The classified night: every file's record plus night-level warnings."""

    root: str
    records: list[FrameRecord]
    warnings: list[str] = field(default_factory=list)

    def accepted(self, kind: str | None = None) -> list[FrameRecord]:
        """Accepted records, optionally of one kind."""
        return [r for r in self.records
                if r.status == "accepted" and (kind is None or r.kind == kind)]

    def rejected(self) -> list[FrameRecord]:
        """Rejected records."""
        return [r for r in self.records if r.status == "rejected"]

    def counts(self) -> dict[str, int]:
        """Counts of accepted frames by kind, plus 'rejected'."""
        c = Counter(r.kind for r in self.accepted())
        out = {k: c.get(k, 0) for k in KINDS}
        out["rejected"] = len(self.rejected())
        return out

    def to_payload(self) -> dict[str, Any]:
        """Plain data (picklable, JSON-able) to pass between tasks."""
        return {"root": self.root, "records": [asdict(r) for r in self.records],
                "warnings": list(self.warnings)}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Inventory:
        """Rebuild an inventory from :meth:`to_payload` output."""
        return cls(root=payload["root"], warnings=list(payload["warnings"]),
                   records=[FrameRecord(**row) for row in payload["records"]])


# --------------------------------------------------------------------------- file reading
def _is_candidate(path: Path) -> bool:
    return not any(part.startswith(".") for part in path.parts)


def list_night_files(root: str | Path) -> list[Path]:
    """Every regular file under ``root`` (recursively, sorted), skipping hidden ones."""
    root = Path(root)
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                files.append(Path(dirpath) / name)
    return files


def read_image_header(path: Path) -> tuple[int, fits.Header, tuple[int, int]]:
    """Return (hdu index, header, (ny, nx)) of the first 2-D image HDU of a FITS file.

    Raises
    ------
    ValueError
        With a plain-language reason: not FITS, truncated, or no 2-D image.
    """
    size = path.stat().st_size
    if size == 0:
        raise ValueError("empty file")
    with open(path, "rb") as fh:
        magic = fh.read(9)
    gz = magic[:2] == b"\x1f\x8b"
    if not gz and magic != b"SIMPLE  =":
        raise ValueError("not a FITS file (no SIMPLE card at the start)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                for index, hdu in enumerate(hdul):
                    header = hdu.header
                    naxis = int(header.get("NAXIS", 0) or 0)
                    is_comp = isinstance(hdu, fits.CompImageHDU)
                    if naxis < 2 and not is_comp:
                        continue
                    shape = hdu.shape if is_comp else tuple(
                        int(header[f"NAXIS{i}"]) for i in range(naxis, 0, -1))
                    dims = [n for n in shape if n != 1]
                    if len(dims) != 2:
                        continue
                    if not gz:
                        info = hdu.fileinfo()
                        need = info["datLoc"] + hdu._data_size  # noqa: SLF001
                        if need > size:
                            raise ValueError(
                                f"truncated FITS file: HDU {index} needs {need} bytes, "
                                f"the file has {size}")
                    return index, header.copy(), (dims[0], dims[1])
    except ValueError:
        raise
    except (OSError, KeyError, TypeError, IndexError, fits.VerifyError) as exc:
        raise ValueError(f"unreadable FITS file: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - astropy raises many types on mangled files
        raise ValueError(f"unreadable FITS file: {type(exc).__name__}: {exc}") from exc
    raise ValueError("no 2-D image in any HDU")


# --------------------------------------------------------------------------- classification
def _classify(path: Path, root: Path, profile: InstrumentProfile | None,
              overrides: GroupingOverrides, checksum: bool) -> FrameRecord:
    relpath = path.relative_to(root).as_posix()
    rec = FrameRecord(path=str(path.resolve()), relpath=relpath)
    try:
        rec.size_bytes = path.stat().st_size
        if checksum:
            rec.sha256 = sha256_file(path)
    except OSError as exc:
        return rec.reject(f"cannot read file: {exc}")
    if not relpath.lower().endswith(FITS_SUFFIXES):
        # Still try: some cameras write FITS without the suffix. Only reject if not FITS.
        pass
    try:
        index, header, shape = read_image_header(path)
    except ValueError as exc:
        return rec.reject(str(exc))
    except OSError as exc:
        return rec.reject(f"cannot read file: {exc}")
    prof = profile or select_profile(header)
    rec.profile = prof.name
    rec.hdu_index = index
    summary: HeaderSummary = normalise_header(header, prof, shape=shape)
    rec.header = summary.to_dict()
    rec.notes.extend(summary.problems)
    folder = classify_by_folder(relpath)
    user = overrides.for_file(relpath)

    # ---- kind: override > header > folder
    if "kind" in user:
        rec.kind, rec.sources["kind"] = user["kind"], "override"
    elif summary.kind is not None:
        rec.kind, rec.sources["kind"] = summary.kind, f"header:{summary.keywords_used['imagetyp']}"
    elif folder.get("kind"):
        rec.kind, rec.sources["kind"] = folder["kind"], f"folder:{folder['convention']}"
    else:
        if summary.imagetyp_raw is not None:
            return rec.reject(f"cannot classify: unknown frame type {summary.imagetyp_raw!r} "
                              f"(profile {prof.name}) and no known folder layout")
        keys = "/".join(prof.keywords.get("imagetyp", [])) or "frame-type"
        return rec.reject(f"cannot classify: no {keys} keyword (profile {prof.name}) "
                          "and no known folder layout")
    if rec.kind not in KINDS:
        return rec.reject(f"unknown frame kind {rec.kind!r}")

    rec.exptime_s = summary.exptime_s
    rec.object = summary.object
    rec.date_obs = summary.date_obs
    rec.mjd = summary.mjd
    if rec.mjd is None and rec.date_obs:
        rec.mjd = _mjd_from_date(rec.date_obs)
    rec.airmass = summary.airmass
    rec.ra_deg, rec.dec_deg = summary.ra_deg, summary.dec_deg
    rec.binning = summary.binning
    rec.naxis1, rec.naxis2 = summary.naxis1, summary.naxis2

    # ---- filter: override > header > folder (irrelevant for bias and dark)
    if rec.kind in ("flat", "science", "standard"):
        if "filter" in user:
            rec.filter, rec.sources["filter"] = user["filter"], "override"
        elif summary.filter is not None:
            rec.filter = summary.filter
            rec.sources["filter"] = f"header:{summary.keywords_used['filter']}"
        elif folder.get("filter"):
            rec.filter, rec.sources["filter"] = folder["filter"], f"folder:{folder['convention']}"
        else:
            keys = "/".join(prof.keywords.get("filter", []))
            return rec.reject(f"{rec.kind} frame without a filter: no {keys} keyword "
                              f"(profile {prof.name}) and no filter folder")

    # ---- exposure time
    if rec.exptime_s is None:
        if rec.kind == "bias":
            rec.exptime_s = 0.0
        else:
            keys = "/".join(prof.keywords.get("exptime", []))
            return rec.reject(f"{rec.kind} frame without an exposure time: no {keys} keyword")
    if rec.kind in ("dark", "flat", "science", "standard") and rec.exptime_s <= 0:
        return rec.reject(f"{rec.kind} frame with exposure time {rec.exptime_s} s")

    # ---- science vs standard field, and the cluster name
    if rec.kind in ("science", "standard"):
        parsed = parse_object_name(rec.object)
        if rec.kind == "science" and prof.is_standard_field(rec.object):
            rec.kind = "standard"
            rec.sources["kind"] += "+standard_field"
        cluster = user.get("cluster") or overrides.cluster_for_object(rec.object)
        if cluster:
            rec.cluster, rec.sources["cluster"] = cluster, "override"
        elif parsed is not None:
            rec.cluster, rec.sources["cluster"] = parsed.cluster, "header:OBJECT"
        elif folder.get("cluster"):
            rec.cluster = folder["cluster"].upper()
            rec.sources["cluster"] = f"folder:{folder['convention']}"
        else:
            return rec.reject(f"{rec.kind} frame without an object name (OBJECT) or cluster "
                              "folder: cannot group it")
        if user.get("pointing"):
            rec.pointing, rec.sources["pointing"] = user["pointing"], "override"
        elif folder.get("pointing"):
            rec.pointing = folder["pointing"]
            rec.sources["pointing"] = f"folder:{folder['convention']}"
        elif parsed is not None and parsed.pointing_hint:
            rec.pointing, rec.sources["pointing"] = parsed.pointing_hint, "header:OBJECT"
    return rec


def _mjd_from_date(date_obs: str) -> float | None:
    from astropy.time import Time

    try:
        return float(Time(date_obs.replace(" ", "T"), scale="utc").mjd)
    except Exception:  # noqa: BLE001
        return None


def _group_pointings(records: list[FrameRecord], tolerance_arcsec: float | None) -> None:
    """Fill ``pointing`` (from RA/DEC) and ``group_key`` of accepted science/standard frames.

    The tolerance is the given one, or else the frames' instrument profile's.
    """
    by_cluster: dict[str, list[FrameRecord]] = {}
    for r in records:
        if r.status == "accepted" and r.kind in ("science", "standard"):
            by_cluster.setdefault(r.cluster or "", []).append(r)
    for members in by_cluster.values():
        todo = [r for r in members if r.pointing is None]
        todo.sort(key=lambda r: (r.mjd if r.mjd is not None else float("inf"), r.relpath))
        positions = [(r.ra_deg, r.dec_deg) if r.ra_deg is not None and r.dec_deg is not None
                     else None for r in todo]
        tol = tolerance_arcsec
        if tol is None:
            prof = load_profile(members[0].profile or "generic")
            tol = float(prof.rules.get("pointing_tolerance_arcsec", 60.0))
        labels = assign_pointings(positions, tol)
        placed = {lab for lab in labels if lab is not None}
        for r, label in zip(todo, labels, strict=True):
            if label is None:
                label = "p0" if len(placed) <= 1 else "unplaced"
                r.notes.append("no readable RA/DEC: pointing "
                               + ("taken as the only one" if label == "p0" else "unknown"))
                r.sources["pointing"] = "default"
            else:
                r.sources["pointing"] = f"header:RA/DEC within {tol:g}\""
            r.pointing = label
        for r in members:
            r.group_key = f"{r.cluster}/{r.pointing}/{r.filter}"


def scan_night(root: str | Path, profile: str | Path | InstrumentProfile | None = None,
               grouping: str | Path | GroupingOverrides | None = None,
               checksum: bool = True) -> Inventory:
    """Classify every file under a raw night's root directory.

    Parameters
    ----------
    root : path-like
        The raw night (read-only: nothing is written there).
    profile : str, path or InstrumentProfile, optional
        Force one instrument profile (name or TOML path). By default each file's profile is
        picked from its TELESCOP/INSTRUME, falling back to the generic profile.
    grouping : path or GroupingOverrides, optional
        A TOML file overriding the cluster/pointing grouping (see ``tgpcore.grouping``).
    checksum : bool
        Compute each file's SHA-256 (needed to key products; can be skipped for a quick look).

    Returns
    -------
    Inventory
        One record per file, accepted or rejected with a reason, and night-level warnings.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a directory, or holds no FITS file.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"raw night directory {root} does not exist or is not a directory")
    prof = load_profile(profile) if isinstance(profile, str | Path) else profile
    overrides = (grouping if isinstance(grouping, GroupingOverrides)
                 else load_grouping_overrides(grouping))
    candidates = [p for p in list_night_files(root) if _is_candidate(p.relative_to(root))]
    if not candidates:
        raise FileNotFoundError(f"no FITS files in {root}")
    records = [_classify(p, root, prof, overrides, checksum) for p in candidates]
    _group_pointings(records, float(prof.rules.get("pointing_tolerance_arcsec", 60.0))
                     if prof is not None else None)
    inv = Inventory(root=str(root.resolve()), records=records)
    counts = inv.counts()
    for kind in ("bias", "flat"):
        if counts[kind] == 0:
            inv.warnings.append(f"no {kind} frames in this night")
    if counts["dark"] == 0:
        inv.warnings.append("no dark frames in this night: science frames will be calibrated "
                            "bias-only (dark current not removed)")
    if counts["science"] == 0:
        inv.warnings.append("no science frames in this night")
    if counts["rejected"]:
        inv.warnings.append(f"{counts['rejected']} file(s) rejected; see their reasons")
    return inv


def format_inventory(inv: Inventory) -> str:
    """A readable table of the inventory, one line per file."""
    lines = [f"Inventory of {inv.root}",
             f"{'file':<44} {'status':<9} {'kind':<9} {'filt':<5} {'exp/s':>7}  {'group / reason'}"]
    for r in inv.records:
        exp = f"{r.exptime_s:7.1f}" if r.exptime_s is not None else "      -"
        tail = r.group_key or (r.reason if r.status == "rejected" else "")
        if r.status == "accepted" and r.kind in ("bias", "dark", "flat"):
            tail = f"{r.binning} {r.naxis1}x{r.naxis2}"
        lines.append(f"{r.relpath[-44:]:<44} {r.status:<9} {r.kind:<9} {r.filter or '-':<5} "
                     f"{exp}  {tail}")
    counts = inv.counts()
    lines.append("accepted: " + ", ".join(f"{counts[k]} {k}" for k in KINDS)
                 + f"; rejected: {counts['rejected']}")
    lines.extend(f"WARNING: {w}" for w in inv.warnings)
    return "\n".join(lines)


def record_dict(records: Any, path: str) -> dict[str, Any]:
    """One inventory record as a dict (``records``: an :class:`Inventory`, or a mapping of
    raw path -> record or dict). Raises KeyError for an unknown path."""
    if hasattr(records, "records"):
        records = {r.path: r for r in records.records}
    r = records[path]
    return dict(r) if isinstance(r, Mapping) else asdict(r)
