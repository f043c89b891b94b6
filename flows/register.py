"""Flow: align and stack each pointing, plate-solve the stacks, mosaic per cluster and filter
(``python -m flows.register --data DIR``).

Stage functions for ``flows.full_run``:

- :func:`run_register_stage` (calibration outcome + inventory -> stacks),
- :func:`run_solve_stage` (stacks -> WCS in each stack, ``.wcs`` headers for its frames),
- :func:`run_mosaic_stage` (solved stacks -> one mosaic per cluster, filter, exposure class).

All filters of one pointing share one reference frame, so the bands of a pointing are on one
pixel grid. Frames that fail to align are recorded with their reason; the stack goes on.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from flows.calibrate import CalibrateOptions
from flows.inventory import InventoryParams
from flows.plan import PlanOptions
from flows.runner import Item, StageRunner, collect, read_result, stage_run, write_result
from flows.session import (
    RunSession,
    raise_alarms,
)
from flows.stagecli import run_stage_cli
from flows.walk import run_stages
from tasks.astrometry import frame_wcs_task, solve_task, solved_stack_task
from tasks.register import (
    align_task,
    mosaic_task,
    reference_task,
    refine_xcorr_task,
    stack_task,
)
from tgpcore.astrometry.plan import SolvePlan, plan_solving, solver_references, solver_timeouts
from tgpcore.instruments import resolve_profile
from tgpcore.inventory import record_dict
from tgpcore.io.checksum import sha256_file
from tgpcore.qc import registration_alarms, solve_alarms
from tgpcore.registration.plan import StackItem, mosaic_groups, plan_stacks

REGISTER_PARAMS_VERSION = 5  # 2: FWHM measured per pointing; plain cross-correlation;
# 3: frame weights by the aperture-sum variance, VARSUMF card; 4: pixels of two frames
# clipped (the higher, when doubled); 5: per-frame fluxes of the reference stars


class RegisterOptions(BaseModel):
    """The options of registration, plate solving and mosaicking."""

    sigma_clip: float = Field(5.0, description="Stack clipping threshold (sigma)")
    weighting: Literal["frame", "pixel"] = Field(
        "frame", description="Inverse-variance weights per frame (sky) or per pixel")
    max_residual_px: float = Field(0.5, description="Reject a frame aligned worse than this")
    short_long_ratio: float = Field(4.0, description="Stack short and long exposures apart "
                                                     "when their lengths differ by more")
    mem_budget_mb: float = Field(256.0, description="Memory for the stack's row blocks")
    fwhm_px: float | None = Field(
        None, description="Stellar FWHM for detection (px); empty: measured per pointing, "
                          "nominal 3.5 px kept unless the measurement is 1.5x away")
    reference_catalog: str | None = Field(
        None, description="Local reference catalogue (CSV/ECSV/FITS with ra, dec) for solving")
    solvers: list[str] = Field(["header", "catalogue", "solve-field", "nova"],
                               description="Plate-solving cascade, in order")
    search_radius_arcmin: float = Field(30.0, ge=30.0, description="Solver search radius")
    pixel_scale_arcsec: float | None = Field(
        None, description="Pixel scale (default: the instrument profile's)")


class RegisterParams(InventoryParams, PlanOptions, CalibrateOptions, RegisterOptions):
    """Parameters of the register flow: the options of the stages it runs."""



@dataclass
class RegistrationOutcome:
    """Stacks of the run: id ``cluster/pointing/filter/class`` -> product info."""

    stacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)  # raw path -> reason
    failed: dict[str, str] = field(default_factory=dict)  # stack id -> reason
    reused: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


def run_register_stage(session: RunSession, params: RegisterParams,
                       calibration: Mapping[str, Any] | Any, records: Any
                       ) -> RegistrationOutcome:
    """Align and stack the calibrated frames of each pointing, inside an open run.

    The stacks are :func:`tgpcore.registration.plan.plan_stacks`'s (pointing, filter, exposure
    class); each goes through the stage runner (reused when its product exists).

    Parameters
    ----------
    session : RunSession
    params : RegisterParams
    calibration : CalibrationOutcome or mapping
        Needs ``calibrated`` (raw path -> calibrated path).
    records : Inventory or mapping
        Inventory records by raw path (``group_key``, ``exptime_s``, ``filter``, ``ra_deg``,
        ``dec_deg``, ``profile``).

    Returns
    -------
    RegistrationOutcome
        ``stacks[stack_id]`` has ``path``, ``group_key``, ``filter``, ``exposure_class``,
        ``members`` (raw paths), ``alignments`` (raw path -> alignment), ``shape``,
        ``hint`` (ra, dec J2000), ``profile``, ``product_id``; stacks re-used from earlier
        runs count in ``reused``.
    """
    calibrated = dict(calibration["calibrated"] if isinstance(calibration, Mapping)
                      else calibration.calibrated)
    recs = {raw: record_dict(records, raw) for raw in calibrated}
    out = RegistrationOutcome()
    with stage_run(session, "register", "stacks") as counts:
        plan = plan_stacks(recs, list(calibrated), params.short_long_ratio)
        out.rejected.update(plan.rejected)
        stacking = _Stacking(session, params, calibrated, plan.pointings)
        done = StageRunner(session, counts).run([stacking.item(it, recs) for it in plan.items])
        for sid, d in done.items():
            by_cal = {calibrated[r]: r for r in recs}
            for a in (d.result or {}).get("alignments_list", []):
                if a["status"] != "ok":
                    out.rejected[by_cal[a["path"]]] = f"alignment: {a['reason']}"
            if d.ok:
                out.stacks[sid] = {**d.result, "product_id": d.product_id}
            else:
                out.failed[sid] = d.reason
        out.reused = counts.reused
        _registration_report(session, out, counts)
    return out


class _Stacking:
    """The shared work of a night's stacks: one reference and alignments per pointing (started
    for every pointing with a stack to make before any stack waits on them)."""

    def __init__(self, session: RunSession, params: RegisterParams, calibrated: dict[str, str],
                 pointings: dict[str, list[str]]) -> None:
        self.session, self.params, self.calibrated = session, params, calibrated
        self.pointings = pointings
        self.refs: dict[str, Any] = {}
        self.aligns: dict[str, Any] = {}
        self.params_rec = {"sigma": params.sigma_clip, "weighting": params.weighting,
                           "mem_budget_mb": params.mem_budget_mb,
                           "max_residual_px": params.max_residual_px,
                           "short_long_ratio": params.short_long_ratio,
                           "fwhm_px": params.fwhm_px, "version": REGISTER_PARAMS_VERSION}

    def item(self, it: StackItem, recs: dict[str, dict[str, Any]]) -> Item:
        """The runner's work item of one stack."""
        cal = self.calibrated
        inputs = {"frames": sorted(sha256_file(cal[r]) for r in it.members),
                  "pointing": sorted(sha256_file(cal[r]) for r in it.pointing_members)}
        return Item(str(it.id), "stack", inputs, self.params_rec,
                    submit=lambda: self.submit(it, recs),
                    prepare=lambda: self.prepare(it.id.pointing))

    def prepare(self, pointing: str) -> None:
        """Start the reference and the alignments of a pointing (once)."""
        if pointing in self.refs:
            return
        p = self.params
        ref = self.refs[pointing] = reference_task.submit(
            [self.calibrated[r] for r in self.pointings[pointing]], p.fwhm_px)
        for r in self.pointings[pointing]:
            self.aligns[r] = align_task.submit(self.calibrated[r], ref, p.fwhm_px,
                                               p.max_residual_px)

    def submit(self, it: StackItem, recs: dict[str, dict[str, Any]]) -> Any:
        """Wait for the pointing's alignments, refine them, and start the stack."""
        ref = self.refs[it.id.pointing].result()
        al = [self.aligns[r].result() for r in it.members]
        if sum(a["status"] == "ok" and a["method"] == "xcorr" for a in al) >= 2:
            al = refine_xcorr_task.submit(al, ref).result()
        sid = str(it.id)
        dest = self.session.run_dir / "stacks" / f"{sid.replace('/', '_')}.fits"
        stack_kw = {k: self.params_rec[k] for k in ("sigma", "weighting", "mem_budget_mb")}
        fut = stack_task.submit(al, ref["shape"], str(dest), sid, stack_kw)
        return _StackFuture(fut, it, ref, al, {self.calibrated[r]: r for r in it.members},
                            recs[it.members[0]])


class _StackFuture:
    """A stack task's future whose result is the stack's description (see
    :func:`run_register_stage`)."""

    def __init__(self, fut: Any, it: StackItem, ref: dict[str, Any], al: list[dict[str, Any]],
                 by_cal: dict[str, str], first: dict[str, Any]) -> None:
        self.fut, self.it, self.ref, self.al, self.by_cal, self.first = (fut, it, ref, al,
                                                                          by_cal, first)

    def result(self) -> dict[str, Any]:
        res, reason = collect(self.fut)
        if reason is not None or res["status"] != "ok":
            return {"status": "failed", "reason": reason or res.get("reason", "failed"),
                    "alignments_list": self.al}
        ref, first, by_cal = self.ref, self.first, self.by_cal
        return {"path": res["path"], "checksum": res["checksum"], "stack_id": str(self.it.id),
                "group_key": first.get("group_key"), "filter": first.get("filter"),
                "exposure_class": self.it.id.exposure_class,
                "members": [by_cal[p] for p in res["members"]],
                "alignments": {by_cal[a["path"]]: a for a in self.al},
                "alignments_list": self.al, "shape": ref["shape"], "reference": ref["path"],
                "fwhm_px": ref.get("fwhm_px"), "fwhm_source": ref.get("fwhm_source"),
                "hint": [first.get("ra_deg"), first.get("dec_deg")],
                "profile": first.get("profile"), "qc": res["qc"], "frames": res["frames"]}


def _registration_report(session: RunSession, out: RegistrationOutcome, counts: Any) -> None:
    """Rejected frames, alarms, log line and the Prefect artifacts of the stage."""
    if out.rejected:
        session.db.upsert_frames(session.run_id, [{"path": p, "status": "rejected",
                                                   "reason": f"registration: {r}"}
                                                  for p, r in out.rejected.items()])
    alarms = raise_alarms(session, registration_alarms(out.stacks))
    counts.extra.update({"alarms": len(alarms), "frames_rejected": len(out.rejected)})
    get_run_logger().info("stacked %d groups (%d reused); %d frames rejected%s",
                          len(out.stacks), out.reused, len(out.rejected), (": " + "; ".join(
                              f"{Path(p).name}: {r}" for p, r in out.rejected.items()))
                          if out.rejected else "")
    md = [f"# Registration: {len(out.stacks)} stacks", ""]
    md += [f"- `{sid}`: {len(s['members'])} frames"
           + (f", detection FWHM {s['fwhm_px']:.2f} px ({s.get('fwhm_source')})"
              if s.get("fwhm_px") else "") for sid, s in out.stacks.items()]
    md += [f"- stack `{k}` failed: {r}" for k, r in out.failed.items()]
    md += [f"- frame `{Path(p).name}` rejected: {r}" for p, r in out.rejected.items()]
    create_markdown_artifact("\n".join(md), key="registration-summary")
    rows = [{"stack": sid, "frame": Path(f["path"]).name, "method": f["method"],
             "dx_px": round(f["shift_x_px"], 3), "dy_px": round(f["shift_y_px"], 3),
             "rot_deg": round(f["rotation_deg"], 4),
             "resid_px": round(f["residual_rms_px"] or 0.0, 4),
             "clipped": round(f["clipped_fraction"], 5)}
            for sid, st in out.stacks.items() for f in st.get("frames", [])]
    if rows:
        create_table_artifact(rows, key="registration-frames",
                              description="Per-frame transform, residual and clipping")


def _profile(params: RegisterParams, recorded: str | None):
    """The instrument profile of a stack: the one the user gave (name or TOML file) wins
    over the name the inventory recorded (which, for a user's file, is no packaged name)."""
    return resolve_profile(params.profile, recorded)


def _scale(params: RegisterParams, profile: str | None) -> float:
    if params.pixel_scale_arcsec:
        return float(params.pixel_scale_arcsec)
    prof = _profile(params, profile)
    scale = prof.detector.get("pixel_scale_arcsec")
    if not scale:
        raise ValueError(f"profile {prof.name!r} has no pixel_scale_arcsec; set "
                         "pixel_scale_arcsec")
    return float(scale)


@dataclass
class SolveOutcome:
    """Plate solutions: stack id -> solver, matched stars, RMS, distortion degree, residual
    figure, frame ``.wcs`` files. ``status`` is 'failed' (with ``message``) when stacks were
    there but none solved."""

    solutions: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    status: str = "succeeded"
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


def _orientation(params: RegisterParams, profile: str | None) -> tuple[float | None, int | None]:
    try:
        det = _profile(params, profile).detector
    except Exception:  # noqa: BLE001 - no profile, no orientation prior
        return None, None
    rot, par = det.get("rotation_deg"), det.get("parity")
    return (float(rot) if rot is not None else None), (int(par) if par is not None else None)


def run_solve_stage(session: RunSession, params: RegisterParams,
                    registration: RegistrationOutcome) -> SolveOutcome:
    """Plate-solve each pointing once and carry the WCS to its stacks and frames.

    The stacks of one pointing share the reference grid, so the first of them to solve (in
    :func:`tgpcore.astrometry.plan.plan_solving`'s order) gives the WCS of all; a failed
    attempt falls back to the next stack. Each solved stack is a new product (``stacks/solved``)
    whose parent is the stack; the stack is never modified. A pointing whose solved stacks all
    exist is reused without solving. The instrument profile's ``[detector]`` may give
    ``pixel_scale_arcsec``, ``rotation_deg`` and ``parity`` (orientation prior of the
    catalogue solver).
    """
    out = SolveOutcome()
    stacks = registration.stacks
    plan = plan_solving(stacks)
    with stage_run(session, "solve", "stacks") as counts:
        runner = StageRunner(session, counts)
        counts.total = len(stacks)
        solving = _Solving(session, params, registration, runner)
        todo = {p: sids for p, sids in plan.attempts.items() if not solving.reuse(p, sids, out)}
        solved, reasons = solving.attempt(SolvePlan(todo))
        for pointing, sids in todo.items():
            if pointing in solved:
                solving.record(pointing, sids, *solved[pointing], out)
            else:
                for sid in sids:
                    out.failed[sid] = "; ".join(reasons[pointing]) or "not solved"
                counts.failed += len(sids)
        solving.collect_frame_wcs(out)
        counts.extra["pointings"] = len(plan.attempts)
        _solve_report(out, len(stacks))
        if stacks and not out.solutions:
            out.status = "failed"
            out.message = (f"no stack solved (0 of {len(stacks)}): "
                           + "; ".join(f"{k}: {v}" for k, v in out.failed.items()))
            counts.message = out.message
            get_run_logger().error("solve failed: %s", out.message)
    return out


class _Solving:
    """The solve stage's work: attempts per pointing, the solved stacks (new products)."""

    def __init__(self, session: RunSession, params: RegisterParams,
                 registration: RegistrationOutcome, runner: StageRunner) -> None:
        self.session, self.params, self.runner = session, params, runner
        self.stacks = registration.stacks
        self.references = solver_references(getattr(params, "gaia_file", None),
                                            params.reference_catalog)
        self.wcs_futs: dict[str, Any] = {}

    def item(self, sid: str, sids: list[str]) -> Item:
        """The runner's item of one solved stack (keyed by its pointing's stacks)."""
        st = self.stacks[sid]
        inputs = {"stack": st.get("checksum") or sha256_file(st["path"]),
                  "pointing": sorted(self.stacks[k].get("checksum") or k for k in sids)}
        params = {"solvers": self.params.solvers, "references": self.references,
                  "search_radius_arcmin": self.params.search_radius_arcmin,
                  "pixel_scale_arcsec": self.params.pixel_scale_arcsec}
        parents = (st["product_id"],) if st.get("product_id") else ()
        return Item(sid, "solved_stack", inputs, params, submit=lambda: None, parents=parents)

    def reuse(self, pointing: str, sids: list[str], out: SolveOutcome) -> bool:
        """Whether every solved stack of the pointing was found (and is now recorded)."""
        items = [self.item(sid, sids) for sid in sids]
        keys = [self.runner.key(i.kind, i.inputs, i.params) for i in items]
        db = self.session.db
        if not all((f := db.find_product(k)) is not None and read_result(f.path) is not None
                   for k in keys):
            return False
        for item, key in zip(items, keys, strict=True):
            done = self.runner.reuse(item, key)
            out.solutions[item.id] = done.result
        return True

    def submit(self, sid: str) -> Any:
        """Start the solver cascade on one stack (the stack is not written)."""
        st, p = self.stacks[sid], self.params
        rot, par = _orientation(p, st.get("profile"))
        ra, dec = st.get("hint") or (None, None)
        plot = str(self.session.run_dir / "plots" / f"astrometry_{Path(st['path']).stem}.png")
        return solve_task.submit(st["path"], _scale(p, st.get("profile")), ra, dec,
                                 self.references, p.solvers, solver_timeouts(p.solvers),
                                 p.search_radius_arcmin, rot, par, st.get("fwhm_px"), plot,
                                 write=False)

    def attempt(self, plan: SolvePlan) -> tuple[dict[str, tuple[str, dict]], dict[str, list]]:
        """Rounds of attempts: each pointing's next stack until one solves."""
        solved: dict[str, tuple[str, dict[str, Any]]] = {}
        reasons: dict[str, list[str]] = {p: [] for p in plan.attempts}
        for round_ in range(plan.rounds):
            futs = {}
            for pointing in plan.attempts:
                sid = None if pointing in solved else plan.attempt(pointing, round_)
                if sid is None:
                    continue
                try:
                    futs[pointing] = (sid, self.submit(sid))
                except Exception as exc:  # noqa: BLE001
                    reasons[pointing].append(f"{sid}: {exc}")
            for pointing, (sid, fut) in futs.items():
                sol, reason = collect(fut)
                if reason is None and sol["status"] == "ok":
                    solved[pointing] = (sid, sol)
                else:
                    reasons[pointing].append(f"{sid}: {reason or sol['reason']}")
        return solved, reasons

    def record(self, pointing: str, sids: list[str], src: str, sol: dict[str, Any],
               out: SolveOutcome) -> None:
        """Write each stack of a solved pointing as a solved stack, record it, and start the
        ``.wcs`` headers of its frames."""
        for sid in sids:
            st, item = self.stacks[sid], self.item(sid, sids)
            key = self.runner.key(item.kind, item.inputs, item.params)
            own = sid == src and sol["solver"] == "header"
            dest = self.session.run_dir / "stacks" / "solved" / Path(st["path"]).name
            history = (f"solved by {sol['solver']}: {sol['n_matched']} stars"
                       if sid == src else f"WCS of {src} (same pointing grid)")
            fut = solved_stack_task.submit(st["path"], str(dest),
                                           None if own else sol.get("wcs_header"), history)
            res, reason = collect(fut)
            if reason is None:
                res.update(solution_summary(sol, src), qc={
                    "wcs_matched_stars": float(sol["n_matched"]),
                    "wcs_rms_arcsec": sol["rms_arcsec"],
                    "wcs_sip_degree": float(sol.get("sip_degree") or 1)})
            done = self.runner.finish(item, key, res, reason)
            if not done.ok:
                out.failed[sid] = done.reason
                continue
            out.solutions[sid] = done.result
            ok = [(raw, a) for raw, a in st["alignments"].items() if a["status"] == "ok"]
            wdir = self.session.run_dir / "stacks" / "wcs"
            paths = [str(wdir / f"{Path(raw).name.split('.')[0]}.wcs") for raw, _ in ok]
            self.wcs_futs[sid] = frame_wcs_task.submit(sol, [a for _, a in ok], st["shape"],
                                                       paths)

    def collect_frame_wcs(self, out: SolveOutcome) -> None:
        """The frames' ``.wcs`` headers (kept in the solved stack's stored result)."""
        for sid, fut in self.wcs_futs.items():
            paths, reason = collect(fut)
            if reason is None:
                out.solutions[sid]["frame_wcs"] = paths
            else:
                out.solutions[sid]["frame_wcs_error"] = reason
            write_result(out.solutions[sid]["path"], out.solutions[sid])


def solution_summary(sol: dict[str, Any], solved_on: str) -> dict[str, Any]:
    """What the run keeps of a plate solution."""
    return {"solver": sol["solver"], "solved_on": solved_on, "n_matched": sol["n_matched"],
            "rms_arcsec": sol["rms_arcsec"], "n_rejected": sol.get("n_rejected"),
            "sip_degree": sol.get("sip_degree"), "cv_arcsec": sol.get("cv_arcsec"),
            "residual_plot": sol.get("residual_plot"), "attempts": sol["attempts"]}


def _solve_report(out: SolveOutcome, n_stacks: int) -> None:
    """Log line and the Prefect artifacts of the solve stage."""
    get_run_logger().info("solved %d/%d stacks%s", len(out.solutions), n_stacks,
                          ("; failed: " + "; ".join(f"{k}: {v}" for k, v in out.failed.items()))
                          if out.failed else "")
    rows = [{"stack": k, "solver": v["solver"], "solved_on": v["solved_on"],
             "matched": v["n_matched"], "rms_arcsec": round(v["rms_arcsec"] or 0.0, 4),
             "sip_degree": v.get("sip_degree") or "TAN",
             "residual_plot": v.get("residual_plot") or ""}
            for k, v in out.solutions.items()]
    md = [f"# Plate solving: {len(out.solutions)}/{n_stacks} stacks", ""]
    md += [f"- `{r['stack']}`: {r['solver']} on `{r['solved_on']}`, {r['matched']} stars, "
           f"RMS {r['rms_arcsec']}\", distortion {r['sip_degree']}"
           + (f" (residuals: `{r['residual_plot']}`)" if r["residual_plot"] else "")
           for r in rows]
    md += [f"- `{k}` not solved: {v}" for k, v in out.failed.items()]
    create_markdown_artifact("\n".join(md), key="astrometry-summary")
    if rows:
        create_table_artifact(rows, key="astrometry-stacks", description="Plate solutions")


@dataclass
class MosaicOutcome:
    """Mosaics: ``cluster/filter/class`` -> product info."""

    mosaics: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


def run_mosaic_stage(session: RunSession, params: RegisterParams,
                     registration: RegistrationOutcome, solved: SolveOutcome) -> MosaicOutcome:
    """Mosaic the solved stacks of each (cluster, filter, exposure class)."""
    out = MosaicOutcome()
    groups = mosaic_groups({sid: s["path"] for sid, s in solved.solutions.items()})
    parents = {s["path"]: s.get("product_id") for s in solved.solutions.values()}
    with stage_run(session, "mosaic", "mosaics") as counts:
        items = [Item(mid, "mosaic", {"stacks": sorted(sha256_file(p) for p in paths)}, {},
                      submit=partial(mosaic_task.submit, paths, str(
                          session.run_dir / "mosaics" / f"{mid.replace('/', '_')}.fits"), mid),
                      parents=tuple(parents[p] for p in paths if parents.get(p)))
                 for mid, paths in groups.items()]
        for mid, d in StageRunner(session, counts).run(items).items():
            if d.ok:
                out.mosaics[mid] = {**d.result, "reused": d.reused}
            else:
                out.failed[mid] = d.reason
        md = [f"# Mosaics: {len(out.mosaics)}", ""]
        md += [f"- `{k}`: {len(v['members'])} stacks -> `{v['path']}`"
               for k, v in out.mosaics.items()]
        md += [f"- `{k}` failed: {v}" for k, v in out.failed.items()]
        create_markdown_artifact("\n".join(md), key="mosaic-summary")
    return out


def register_step(night: Any) -> RegistrationOutcome:
    """Registration in a walk of the stage table."""
    return run_register_stage(night.session, night.params, night.get("calibrate"),
                              night.get("inventory"))


def solve_step(night: Any) -> SolveOutcome:
    """Plate solving in a walk of the stage table, with its alarms (pixel scale, RMS)."""
    reg = night.get("register")
    sol = run_solve_stage(night.session, night.params, reg)
    raise_alarms(night.session, solve_alarms(sol.solutions, stack_scales(night.params, reg)))
    return sol


def stack_scales(params: RegisterParams, reg: RegistrationOutcome) -> dict[str, float]:
    """Pixel scale (arcsec) of each stack, from the parameters or its instrument profile."""
    out = {}
    for sid, st in reg.stacks.items():
        try:
            out[sid] = _scale(params, st.get("profile"))
        except Exception:  # noqa: BLE001 - no scale: the alarm uses arcseconds only
            continue
    return out


def mosaic_step(night: Any) -> MosaicOutcome:
    """Mosaics in a walk of the stage table."""
    return run_mosaic_stage(night.session, night.params, night.get("register"),
                            night.get("solve"))


@flow(name="tgp-register", log_prints=True)
def register_flow(params: RegisterParams, run_id: str | None = None) -> dict[str, Any]:
    """Inventory, plan, calibrate, then register, solve and mosaic a night."""
    return run_stages(params, ["register", "solve", "mosaic"], run_id).result


def main(argv: list[str] | None = None) -> int:
    """Command line: register, solve and mosaic a night."""
    result = run_stage_cli(argv, module="register", doc=__doc__, params_cls=RegisterParams,
                           flow_fn=register_flow, runner="dask",
                           options=("reference_catalog",))
    for sid, st in result["registration"]["stacks"].items():
        sol = result["solve"]["solutions"].get(sid)
        print(f"{sid}: {len(st['members'])} frames -> {st['path']}"
              + (f"; WCS by {sol['solver']} ({sol['n_matched']} stars, "
                 f"{sol['rms_arcsec'] or 0:.3f}\" RMS, SIP degree {sol.get('sip_degree')})"
                 if sol else "; not solved"))
    for mid, m in result["mosaic"]["mosaics"].items():
        print(f"mosaic {mid}: {m['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
