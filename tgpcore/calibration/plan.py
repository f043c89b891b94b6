"""The calibration plan: which masters exist and which master each science frame uses.

The plan is data, computed from the inventory before any pixel is touched. Matching rules come
from ``plan_rules.toml`` (or a user file). Every choice that is not the ideal one is a warning
on the entry (no darks, so bias only; dark scaled; flat taken days earlier); every frame that
cannot be calibrated is refused with its reason (no flat in its filter, flat of another shape).
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from astropy.time import Time

from tgpcore.inventory import FrameRecord, Inventory

CALIBRATION_KINDS = ("bias", "dark", "flat")
TARGET_KINDS = ("science", "standard")


def load_rules(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Load the packaged matching rules, updated by a user's TOML file if given.

    Raises
    ------
    ValueError
        If the user's file is missing or not valid TOML (the message names it).
    """
    packaged = resources.files("tgpcore.calibration").joinpath("plan_rules.toml").read_text()
    rules = tomllib.loads(packaged)
    if path is not None:
        try:
            user = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ValueError(f"plan rules file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"plan rules file {path} is not valid TOML: {exc}") from exc
        for kind, entries in user.items():
            if kind not in CALIBRATION_KINDS or not isinstance(entries, dict):
                raise ValueError(f"plan rules file {path}: unknown section [{kind}]")
            rules[kind].update(entries)
    return rules


@dataclass
class MasterSpec:
    """A master calibration frame to build: its members, what it depends on, and why."""

    key: str
    kind: str
    filter: str | None
    binning: str
    shape: str
    exptime_s: float | None
    mjd: float | None
    members: list[str]
    depends: dict[str, Any] = field(default_factory=dict)
    rule: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class PlanEntry:
    """The masters one science or standard frame uses, or the reason it is refused."""

    path: str
    relpath: str
    kind: str
    object: str | None
    group_key: str | None
    filter: str | None
    exptime_s: float | None
    bias_key: str | None = None
    dark_key: str | None = None
    dark_scale: float | None = None
    flat_key: str | None = None
    overscan: bool = False
    status: str = "ok"
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class CalibrationPlan:
    """Masters, per-frame entries, night-level warnings, and the rules that made them."""

    masters: dict[str, MasterSpec]
    entries: list[PlanEntry]
    warnings: list[str]
    rules: dict[str, dict[str, Any]]

    def refused(self) -> list[PlanEntry]:
        """Entries that cannot be calibrated."""
        return [e for e in self.entries if e.status != "ok"]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for task results and the database)."""
        return {"masters": {k: asdict(m) for k, m in self.masters.items()},
                "entries": [asdict(e) for e in self.entries],
                "warnings": list(self.warnings), "rules": copy.deepcopy(self.rules)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationPlan:
        """Inverse of :meth:`to_dict`."""
        return cls(masters={k: MasterSpec(**m) for k, m in data["masters"].items()},
                   entries=[PlanEntry(**e) for e in data["entries"]],
                   warnings=list(data["warnings"]), rules=data["rules"])

    def db_records(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Rows for the run database: (plan_masters, plan_entries keyed by frame path)."""
        masters = [{"key": m.key, "kind": m.kind, "filter": m.filter, "binning": m.binning,
                    "shape": m.shape, "exptime_s": m.exptime_s, "members": m.members,
                    "depends": m.depends, "rule": m.rule, "warnings": m.warnings}
                   for m in self.masters.values()]
        entries = [{"path": e.path, "bias_key": e.bias_key, "dark_key": e.dark_key,
                    "dark_scale": e.dark_scale, "flat_key": e.flat_key, "status": e.status,
                    "reason": e.reason, "warnings": e.warnings} for e in self.entries]
        return masters, entries


# ----------------------------------------------------------------------------- helpers
def _shape(rec: FrameRecord) -> str:
    return f"{rec.naxis1}x{rec.naxis2}"


def _attr(rec: FrameRecord, name: str) -> Any:
    return _shape(rec) if name == "shape" else getattr(rec, name)


def _date(mjd: float | None) -> str:
    if mjd is None:
        return "nodate"
    return Time(mjd, format="mjd").strftime("%Y%m%d")


def _sessions(frames: list[FrameRecord], gap_days: float) -> list[list[FrameRecord]]:
    """Split frames into sessions: runs of frames no more than ``gap_days`` apart in time."""
    dated = sorted((f for f in frames if f.mjd is not None), key=lambda f: f.mjd)
    undated = [f for f in frames if f.mjd is None]
    sessions: list[list[FrameRecord]] = []
    for f in dated:
        if sessions and f.mjd - sessions[-1][-1].mjd <= gap_days:
            sessions[-1].append(f)
        else:
            sessions.append([f])
    if undated:
        if sessions:
            sessions[-1].extend(undated)
        else:
            sessions.append(undated)
    return sessions


def _fmt_exp(t: float | None) -> str:
    return "?" if t is None else f"{t:g}"


def _build_masters(inv: Inventory, rules: dict[str, dict[str, Any]]) -> dict[str, MasterSpec]:
    masters: dict[str, MasterSpec] = {}
    for kind in CALIBRATION_KINDS:
        rule = rules[kind]
        match = list(rule["match"])
        if kind == "dark":
            match = match + ["exptime_s"]
        groups: dict[tuple, list[FrameRecord]] = {}
        for rec in inv.accepted(kind):
            groups.setdefault(tuple(_attr(rec, m) for m in match), []).append(rec)
        for _, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
            for session in _sessions(members, float(rule["session_gap_days"])):
                mjds = [f.mjd for f in session if f.mjd is not None]
                mjd = sum(mjds) / len(mjds) if mjds else None
                first = session[0]
                parts = [kind]
                if kind == "flat":
                    parts.append(str(first.filter))
                parts += [first.binning or "1x1", _shape(first)]
                if kind == "dark":
                    parts.append(f"{_fmt_exp(first.exptime_s)}s")
                parts.append(_date(mjd))
                key = "_".join(parts)
                n = 2
                while key in masters:
                    key = "_".join(parts) + f"_{n}"
                    n += 1
                spec = MasterSpec(
                    key=key, kind=kind, filter=first.filter if kind == "flat" else None,
                    binning=first.binning or "1x1", shape=_shape(first),
                    exptime_s=first.exptime_s if kind == "dark" else None, mjd=mjd,
                    members=sorted(f.path for f in session),
                    rule="same " + ", ".join(dict.fromkeys(match)).replace("exptime_s",
                                                                          "exposure time")
                         + f"; one session (gaps <= {rule['session_gap_days']} d)")
                if len(session) < int(rule.get("min_frames", 1)):
                    spec.warnings.append(
                        f"only {len(session)} {kind} frame(s); at least {rule['min_frames']} "
                        "recommended for a low-noise master")
                masters[key] = spec
    return masters


def _candidates(masters: dict[str, MasterSpec], kind: str, rec_like: dict[str, Any],
                match: list[str]) -> list[MasterSpec]:
    out = []
    for m in masters.values():
        if m.kind != kind:
            continue
        attrs = {"filter": m.filter, "binning": m.binning, "shape": m.shape}
        if all(attrs[a] == rec_like[a] for a in match):
            out.append(m)
    return out


def _age_days(m: MasterSpec, mjd: float | None) -> float | None:
    if m.mjd is None or mjd is None:
        return None
    return abs(m.mjd - mjd)


def _nearest(cands: list[MasterSpec], mjd: float | None) -> MasterSpec:
    return min(cands, key=lambda m: (_age_days(m, mjd) if _age_days(m, mjd) is not None
                                     else float("inf"), m.key))


def _pick(masters: dict[str, MasterSpec], kind: str, target: dict[str, Any],
          rules: dict[str, dict[str, Any]], warnings: list[str]
          ) -> tuple[MasterSpec | None, str | None]:
    """Choose a master of ``kind`` for a target; return (master, refusal reason)."""
    rule = rules[kind]
    match = list(rule["match"])
    cands = _candidates(masters, kind, target, match)
    if not cands:
        others = sorted({f"{m.filter + ' ' if m.filter else ''}{m.binning} {m.shape}"
                         for m in masters.values() if m.kind == kind})
        want = " ".join(str(target[a]) for a in match)
        have = f" (available: {', '.join(others)})" if others else ""
        return None, f"no {kind} matching {want}{have}"
    if kind == "dark":
        texp = target.get("exptime_s") or 0.0
        best_exp = min(cands, key=lambda m: (abs((m.exptime_s or 0.0) - texp), m.key)).exptime_s
        cands = [m for m in cands if m.exptime_s == best_exp]
    chosen = _nearest(cands, target.get("mjd"))
    age = _age_days(chosen, target.get("mjd"))
    if age is not None and age > float(rule["max_age_days"]):
        return None, (f"nearest {kind} ({chosen.key}) is {age:.1f} days from the frame, more "
                      f"than the {rule['max_age_days']:g}-day limit")
    if age is not None and age > float(rule["warn_age_days"]):
        warnings.append(f"{kind} master {chosen.key} taken {age:.1f} days from this frame")
    return chosen, None


def _dark_for(masters: dict[str, MasterSpec], target: dict[str, Any],
              rules: dict[str, dict[str, Any]], warnings: list[str]
              ) -> tuple[str | None, float | None]:
    if not any(m.kind == "dark" for m in masters.values()):
        return None, None
    dark, reason = _pick(masters, "dark", target, rules, warnings)
    if dark is None:
        warnings.append(f"{reason}: calibrated without dark subtraction")
        return None, None
    texp = float(target.get("exptime_s") or 0.0)
    scale = texp / dark.exptime_s if dark.exptime_s else 0.0
    if abs(scale - 1.0) > 1e-6:
        warnings.append(f"dark exposure scaled from {dark.exptime_s:g} s to {texp:g} s "
                        f"(x{scale:.3g})")
        if scale > float(rules["dark"]["max_scale"]):
            warnings.append(f"dark scaled up by more than x{rules['dark']['max_scale']:g}: "
                            "its noise is amplified")
    return dark.key, scale


def build_plan(inv: Inventory, rules: dict[str, dict[str, Any]] | None = None
               ) -> CalibrationPlan:
    """Assign each science and standard frame its masters.

    Parameters
    ----------
    inv : Inventory
        The classified night.
    rules : dict, optional
        Matching rules (see :func:`load_rules`); the packaged ones by default.

    Returns
    -------
    CalibrationPlan
        With night-level warnings, and per entry: its master keys, dark scale, warnings, and
        ``status`` 'ok' or 'refused' with the reason.
    """
    rules = rules or load_rules()
    masters = _build_masters(inv, rules)
    night_warnings: list[str] = []
    has = {k: any(m.kind == k for m in masters.values()) for k in CALIBRATION_KINDS}
    if not has["dark"]:
        night_warnings.append("no darks in this night: frames are calibrated bias-only "
                              "(dark current is not removed)")
    if not has["bias"]:
        night_warnings.append("no bias frames in this night: only frames with an overscan "
                              "region can be calibrated")

    # Masters depend on other masters: darks on a bias, flats on a bias and a dark.
    for m in list(masters.values()):
        if m.kind == "bias":
            continue
        target = {"filter": m.filter, "binning": m.binning, "shape": m.shape, "mjd": m.mjd,
                  "exptime_s": m.exptime_s}
        if m.kind == "flat":
            flat_frames = {r.path: r for r in inv.accepted("flat")}
            exps = [flat_frames[p].exptime_s for p in m.members if p in flat_frames]
            target["exptime_s"] = sum(exps) / len(exps) if exps else None
        bias, reason = _pick(masters, "bias", target, rules, m.warnings)
        if bias is not None:
            m.depends["bias"] = bias.key
        else:
            m.warnings.append(f"{reason}: built without bias subtraction")
        if m.kind == "flat":
            dark_key, scale = _dark_for(masters, target, rules, m.warnings)
            if dark_key:
                m.depends["dark"] = dark_key
                m.depends["dark_scale_note"] = "each flat's dark is scaled to its own exposure"

    entries: list[PlanEntry] = []
    targets = sorted((r for r in inv.accepted() if r.kind in TARGET_KINDS),
                     key=lambda r: r.relpath)
    for rec in targets:
        e = PlanEntry(path=rec.path, relpath=rec.relpath, kind=rec.kind, object=rec.object,
                      group_key=rec.group_key, filter=rec.filter, exptime_s=rec.exptime_s)
        target = {"filter": rec.filter, "binning": rec.binning, "shape": _shape(rec),
                  "mjd": rec.mjd, "exptime_s": rec.exptime_s}
        e.overscan = bool(rec.header.get("overscan_section"))
        bias, reason = _pick(masters, "bias", target, rules, e.warnings)
        if bias is not None:
            e.bias_key = bias.key
        elif e.overscan:
            e.warnings.append(f"{reason}: overscan subtraction only")
        else:
            e.status, e.reason = "refused", reason
        if not has["dark"]:
            e.warnings.append("no darks: bias-only calibration")
        else:
            e.dark_key, e.dark_scale = _dark_for(masters, target, rules, e.warnings)
        flat, reason = _pick(masters, "flat", target, rules, e.warnings)
        if flat is not None:
            e.flat_key = flat.key
        elif e.status == "ok":
            e.status, e.reason = "refused", reason
        else:
            e.reason = f"{e.reason}; {reason}"
        entries.append(e)

    used = {k for e in entries if e.status == "ok" for k in (e.bias_key, e.dark_key, e.flat_key)}
    used |= {m.depends.get(d) for m in masters.values() if m.key in used for d in ("bias", "dark")}
    for m in masters.values():
        if m.key not in used:
            m.warnings.append("not used by any science frame")
    refused = [e for e in entries if e.status != "ok"]
    if refused:
        by_reason: dict[str, int] = {}
        for e in refused:
            by_reason[e.reason or "?"] = by_reason.get(e.reason or "?", 0) + 1
        for reason, n in sorted(by_reason.items()):
            night_warnings.append(f"{n} frame(s) refused: {reason}")
    return CalibrationPlan(masters=masters, entries=entries, warnings=night_warnings,
                           rules=rules)


def _entry_line(e: PlanEntry, bias_w: int, dark_w: int, flat_w: int) -> str:
    """One science frame's row of a plan table (frame, kind, group, exposure, masters, status);
    the bias, dark and flat columns ``bias_w``, ``dark_w`` and ``flat_w`` wide."""
    exp = f"{e.exptime_s:6.1f}" if e.exptime_s is not None else "     -"
    bias = "yes" if e.bias_key else ("ovsc" if e.overscan else "no")
    dark = "-" if e.dark_key is None else f"x{e.dark_scale:.3g}"
    flat = "yes" if e.flat_key else "no"
    status = "ok" if e.status == "ok" else f"REFUSED: {e.reason}"
    return (f"  {e.relpath[-34:]:<34} {e.kind:<8} {(e.group_key or '-')[-18:]:<18} {exp} "
            f"{bias:<{bias_w}} {dark:<{dark_w}} {flat:<{flat_w}} {status}")


def format_plan(plan: CalibrationPlan) -> str:
    """The plan as a readable text table: masters, then one line per science frame."""
    out = ["Masters:",
           f"  {'key':<40} {'kind':<5} {'n':>3}  depends on / warnings"]
    for m in plan.masters.values():
        dep = ", ".join(f"{k}={v}" for k, v in m.depends.items() if k in ("bias", "dark"))
        out.append(f"  {m.key:<40} {m.kind:<5} {len(m.members):>3}  {dep}")
        out.extend(f"  {'':<40} {'':<5} {'':>3}  ! {w}" for w in m.warnings)
    out.append("")
    out.append(f"  {'frame':<34} {'kind':<8} {'group':<18} {'exp/s':>6} "
               f"{'bias':<6} {'dark':<12} {'flat':<6} status")
    for e in plan.entries:
        out.append(_entry_line(e, bias_w=6, dark_w=12, flat_w=6))
        out.extend(f"  {'':<34}   ! {w}" for w in e.warnings)
    ok = sum(e.status == "ok" for e in plan.entries)
    out.append(f"{ok}/{len(plan.entries)} frames can be calibrated; "
               f"{len(plan.entries) - ok} refused; {len(plan.masters)} masters")
    out.extend(f"WARNING: {w}" for w in plan.warnings)
    return "\n".join(out)


def format_night_plan(inv: Inventory, plan: CalibrationPlan) -> str:
    """The whole night as the plan sees it: every file with its classification, every master
    with the frames it is made of, every science and standard frame with the masters it uses,
    and the rejected files with their reasons.

    A warning that every frame shares (no darks, a flat taken days earlier) is said once, not
    once per frame.
    """
    out = [f"Night: {inv.root}", "",
           f"Files ({len(inv.records)}):",
           f"  {'file':<40} {'kind':<9} {'filter':<6} {'exp/s':>7}  group / reason"]
    for r in inv.records:
        exp = f"{r.exptime_s:7.1f}" if r.exptime_s is not None else "      -"
        if r.status == "rejected":
            kind, tail = "REJECTED", r.reason or ""
        else:
            kind = r.kind or "?"
            tail = r.group_key or (f"{r.binning} {r.naxis1}x{r.naxis2}"
                                   if kind in CALIBRATION_KINDS else "")
        out.append(f"  {r.relpath[-40:]:<40} {kind:<9} {r.filter or '-':<6} {exp}  {tail}")
    rel = {r.path: r.relpath for r in inv.records}
    out += ["", f"Masters ({len(plan.masters)}):"]
    for m in plan.masters.values():
        dep = ", ".join(f"{k} {v}" for k, v in m.depends.items() if k in ("bias", "dark"))
        out.append(f"  {m.key}  ({m.kind}, {len(m.members)} frame"
                   f"{'s' if len(m.members) != 1 else ''}{'; uses ' + dep if dep else ''})")
        out.append("    from: " + ", ".join(Path(rel.get(p, p)).name for p in m.members))
        out.extend(f"    ! {w}" for w in m.warnings)
    entries = plan.entries
    out += ["", f"Frames to calibrate ({len(entries)}):",
            f"  {'frame':<34} {'kind':<8} {'group':<18} {'exp/s':>6} {'bias':<5} "
            f"{'dark':<8} {'flat':<5} status"]
    by_warning: dict[str, list[str]] = {}
    for e in entries:
        out.append(_entry_line(e, bias_w=5, dark_w=8, flat_w=5))
        for w in e.warnings:
            if w.startswith("no darks") and any(n.startswith("no darks") for n in plan.warnings):
                continue          # the night's warning says it once
            by_warning.setdefault(w, []).append(Path(e.relpath).name)
    ok = sum(e.status == "ok" for e in entries)
    out.append("")
    out.append(f"{ok}/{len(entries)} frames can be calibrated; {len(entries) - ok} refused; "
               f"{len(plan.masters)} masters; {len(inv.rejected())} files rejected")
    # the inventory and the plan may say the same thing ("no dark frames" / "no darks"): once
    topics = {" ".join(w.split()[:2]).rstrip("s") for w in inv.warnings}
    night = list(dict.fromkeys(list(inv.warnings) + [
        w for w in plan.warnings if " ".join(w.split()[:2]).rstrip("s") not in topics]))
    if night or by_warning:
        out.append("Warnings:")
    out.extend(f"  {w}" for w in night)
    for w, frames in by_warning.items():
        who = ("every frame" if len(frames) == len(entries) and len(entries) > 1 else
               ", ".join(frames) if len(frames) <= 3 else f"{len(frames)} frames")
        out.append(f"  {w} ({who})")
    return "\n".join(out)
