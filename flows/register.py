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

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from astropy.io import fits
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import Field

from flows.calibrate import CalibrateParams, run_calibrate_stage
from flows.inventory import run_inventory_stage
from flows.plan import run_plan_stage
from flows.runners import RunnerSettings, make_task_runner
from flows.session import (
    RunSession,
    closing_failed_run,
    open_session,
    raise_alarms,
    recorded_stage,
)
from flows.settings import default_out_root
from tasks.astrometry import frame_wcs_task, solve_task
from tasks.register import (
    align_task,
    mosaic_task,
    reference_task,
    refine_xcorr_task,
    stack_task,
)
from tgpcore import __version__
from tgpcore.astrometry.products import write_wcs
from tgpcore.instruments import resolve_profile
from tgpcore.io.atomic import atomic_path
from tgpcore.io.checksum import product_key, sha256_file
from tgpcore.qc import registration_alarms, solve_alarms
from tgpcore.registration import exposure_classes

REGISTER_PARAMS_VERSION = 5  # 2: FWHM measured per pointing; plain cross-correlation;
# 3: frame weights by the aperture-sum variance, VARSUMF card; 4: pixels of two frames
# clipped (the higher, when doubled); 5: per-frame fluxes of the reference stars


class RegisterParams(CalibrateParams):
    """Parameters of registration, plate solving and mosaicking."""

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


def _rec(records: Any, path: str) -> dict[str, Any]:
    """One inventory record as a dict (records: Inventory, mapping of records or dicts)."""
    if hasattr(records, "records"):
        records = {r.path: r for r in records.records}
    r = records[path]
    return asdict(r) if not isinstance(r, Mapping) else dict(r)


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


def _write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, default=str))


def run_register_stage(session: RunSession, params: RegisterParams,
                       calibration: Mapping[str, Any] | Any, records: Any
                       ) -> RegistrationOutcome:
    """Align and stack the calibrated frames of each pointing, inside an open run.

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
        ``hint`` (ra, dec J2000), ``profile``; stacks re-used from earlier runs count in
        ``reused``.
    """
    logger = get_run_logger()
    db, run_id = session.db, session.run_id
    calibrated = dict(calibration["calibrated"] if isinstance(calibration, Mapping)
                      else calibration.calibrated)
    out = RegistrationOutcome()
    stack_dir = session.run_dir / "stacks"
    stack_kw = {"sigma": params.sigma_clip, "weighting": params.weighting,
                "mem_budget_mb": params.mem_budget_mb}
    params_rec = {**stack_kw, "max_residual_px": params.max_residual_px,
                  "short_long_ratio": params.short_long_ratio, "fwhm_px": params.fwhm_px,
                  "version": REGISTER_PARAMS_VERSION}
    pointings: dict[str, list[str]] = {}
    for raw in sorted(calibrated):
        gk = _rec(records, raw).get("group_key")
        if not gk:
            out.rejected[raw] = "no group key (cluster/pointing/filter)"
            continue
        pointings.setdefault(gk.rsplit("/", 1)[0], []).append(raw)
    with recorded_stage(session, "register") as counters:
        plans = []  # (pointing, stack_id, raws, pkey, inputs)
        for pointing, raws in pointings.items():
            by_filter: dict[str, list[str]] = {}
            for raw in raws:
                by_filter.setdefault(str(_rec(records, raw).get("filter")), []).append(raw)
            for filt, members in sorted(by_filter.items()):
                cls = exposure_classes({r: float(_rec(records, r).get("exptime_s") or 0.0)
                                        for r in members}, params.short_long_ratio)
                for c in ("short", "long"):
                    raws_c = [r for r in members if cls[r] == c]
                    if not raws_c:
                        continue
                    inputs = {"frames": sorted(sha256_file(calibrated[r]) for r in raws_c),
                              "pointing": sorted(sha256_file(calibrated[r]) for r in raws)}
                    pkey = product_key("stack", inputs, params_rec, __version__)
                    plans.append((pointing, f"{pointing}/{filt}/{c}", raws_c, pkey, inputs))
        todo_pointings = set()
        for pointing, sid, _raws, pkey, inputs in plans:
            found = db.find_product(pkey)
            meta = Path(found.path).with_suffix(".json") if found is not None else None
            if found is not None and meta.exists():
                out.stacks[sid] = json.loads(meta.read_text())
                db.record_product(run_id, "stack", pkey, found.path, found.checksum, inputs,
                                  params_rec, __version__)
                out.reused += 1
            else:
                todo_pointings.add(pointing)
        refs = {p: reference_task.submit([calibrated[r] for r in pointings[p]], params.fwhm_px)
                for p in sorted(todo_pointings)}
        aligns = {r: align_task.submit(calibrated[r], refs[p], params.fwhm_px,
                                       params.max_residual_px)
                  for p in refs for r in pointings[p]}
        pending = []
        for pointing, sid, raws_c, pkey, inputs in plans:
            if sid in out.stacks:
                continue
            try:
                ref = refs[pointing].result()
                al = [aligns[r].result() for r in raws_c]
                if sum(a["status"] == "ok" and a["method"] == "xcorr" for a in al) >= 2:
                    al = refine_xcorr_task.submit(al, ref).result()
            except Exception as exc:  # noqa: BLE001 - one pointing never kills the night
                out.failed[sid] = f"{type(exc).__name__}: {exc}"
                continue
            dest = stack_dir / f"{sid.replace('/', '_')}.fits"
            fut = stack_task.submit(al, ref["shape"], str(dest), sid, stack_kw)
            pending.append((pointing, sid, raws_c, pkey, inputs, ref, al, fut))
        rows = []
        for _pointing, sid, raws_c, pkey, inputs, ref, al, fut in pending:
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001
                res = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
            by_cal = {calibrated[r]: r for r in raws_c}
            for a in al:
                if a["status"] != "ok":
                    out.rejected[by_cal[a["path"]]] = f"alignment: {a['reason']}"
            if res["status"] != "ok":
                out.failed[sid] = res.get("reason", "failed")
                db.record_product(run_id, "stack", pkey, None, None, inputs, params_rec,
                                  __version__, status="failed")
                continue
            first = _rec(records, raws_c[0])
            info = {"path": res["path"], "stack_id": sid, "group_key": first.get("group_key"),
                    "filter": first.get("filter"), "exposure_class": sid.rsplit("/", 1)[1],
                    "members": [by_cal[p] for p in res["members"]],
                    "alignments": {by_cal[a["path"]]: a for a in al}, "shape": ref["shape"],
                    "reference": ref["path"], "product_key": pkey, "fwhm_px": ref.get("fwhm_px"),
                    "fwhm_source": ref.get("fwhm_source"), "hint": [first.get("ra_deg"), first.get("dec_deg")],
                    "profile": first.get("profile"), "qc": res["qc"], "frames": res["frames"]}
            _write_json(Path(res["path"]).with_suffix(".json"), info)
            out.stacks[sid] = info
            pid = db.record_product(run_id, "stack", pkey, res["path"], res["checksum"], inputs,
                                    params_rec, __version__)
            db.add_qc(run_id, res["qc"], product_id=pid)
            for f in res["frames"]:
                rows.append({"stack": sid, "frame": Path(f["path"]).name, "method": f["method"],
                             "dx_px": round(f["shift_x_px"], 3),
                             "dy_px": round(f["shift_y_px"], 3),
                             "rot_deg": round(f["rotation_deg"], 4),
                             "resid_px": round(f["residual_rms_px"] or 0.0, 4),
                             "clipped": round(f["clipped_fraction"], 5)})
        if out.rejected:
            db.upsert_frames(run_id, [{"path": p, "status": "rejected",
                                       "reason": f"registration: {r}"}
                                      for p, r in out.rejected.items()])
        alarms = raise_alarms(session, registration_alarms(out.stacks))
        counters.update({"alarms": len(alarms), "stacks": len(out.stacks),
                         "failed": len(out.failed),
                         "frames_rejected": len(out.rejected), "reused": out.reused})
        logger.info("stacked %d groups (%d reused); %d frames rejected%s", len(out.stacks),
                    out.reused, len(out.rejected), (": " + "; ".join(
                        f"{Path(p).name}: {r}" for p, r in out.rejected.items()))
                    if out.rejected else "")
        md = [f"# Registration: {len(out.stacks)} stacks", ""]
        md += [f"- `{sid}`: {len(s['members'])} frames"
               + (f", detection FWHM {s['fwhm_px']:.2f} px ({s.get('fwhm_source')})"
                  if s.get("fwhm_px") else "") for sid, s in out.stacks.items()]
        md += [f"- stack `{k}` failed: {r}" for k, r in out.failed.items()]
        md += [f"- frame `{Path(p).name}` rejected: {r}" for p, r in out.rejected.items()]
        create_markdown_artifact("\n".join(md), key="registration-summary")
        if rows:
            create_table_artifact(rows, key="registration-frames",
                                  description="Per-frame transform, residual and clipping")
    return out


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

    The stacks of one pointing share the reference grid, so the first of them to solve
    (long before short, most frames first) gives the WCS of all; a failed attempt falls back
    to the next stack. The instrument profile's ``[detector]`` may give ``pixel_scale_arcsec``,
    ``rotation_deg`` and ``parity`` (orientation prior of the catalogue solver).
    """
    logger = get_run_logger()
    out = SolveOutcome()
    timeouts = {"header": 5.0, "catalogue": 60.0, "solve-field": 120.0, "nova": 300.0}
    by_pointing: dict[str, list[str]] = {}
    for sid in registration.stacks:
        by_pointing.setdefault(sid.rsplit("/", 2)[0], []).append(sid)
    for sids in by_pointing.values():
        sids.sort(key=lambda k: (registration.stacks[k]["exposure_class"] != "long",
                                 -len(registration.stacks[k]["members"]), k))

    references = _references(params)
    plot_dir = session.run_dir / "plots"

    def submit(sid: str):
        st = registration.stacks[sid]
        scale = _scale(params, st.get("profile"))
        rot, par = _orientation(params, st.get("profile"))
        ra, dec = st.get("hint") or (None, None)
        plot = str(plot_dir / f"astrometry_{Path(st['path']).stem}.png")
        return solve_task.submit(st["path"], scale, ra, dec, references, params.solvers,
                                 timeouts, params.search_radius_arcmin, rot, par,
                                 st.get("fwhm_px"), plot)

    try:
        _solve_all(session, params, registration, out, by_pointing, submit, logger)
    except NothingSolved as exc:
        out.status, out.message = "failed", str(exc)
        logger.error("solve failed: %s", exc)
    return out


class NothingSolved(RuntimeError):
    """A solve stage that solved no stack (recorded as failed, with the reasons)."""


def _references(params: RegisterParams) -> list[str] | None:
    """The plate solver's references: the reference catalogue and the run's Gaia table (a
    full run's ``gaia_file``), Gaia first -- it is the more precise and, for a member list,
    the denser in a cluster core; the solver combines them."""
    refs = [r for r in (getattr(params, "gaia_file", None), params.reference_catalog) if r]
    refs = list(dict.fromkeys(refs))
    return refs or None


def _solve_all(session: RunSession, params: RegisterParams, registration: RegistrationOutcome,
               out: SolveOutcome, by_pointing: dict[str, list[str]], submit, logger) -> None:
    """The body of :func:`run_solve_stage` inside its recorded stage."""
    db, run_id = session.db, session.run_id
    with recorded_stage(session, "solve") as counters:
        solved: dict[str, tuple[str, dict[str, Any]]] = {}  # pointing -> (sid, solution)
        reasons: dict[str, list[str]] = {p: [] for p in by_pointing}
        for attempt in range(max((len(v) for v in by_pointing.values()), default=0)):
            futs = {}
            for pointing, sids in by_pointing.items():
                if pointing in solved or attempt >= len(sids):
                    continue
                try:
                    futs[pointing] = (sids[attempt], submit(sids[attempt]))
                except Exception as exc:  # noqa: BLE001
                    reasons[pointing].append(f"{sids[attempt]}: {exc}")
            for pointing, (sid, fut) in futs.items():
                try:
                    sol = fut.result()
                except Exception as exc:  # noqa: BLE001
                    sol = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
                if sol["status"] == "ok":
                    solved[pointing] = (sid, sol)
                else:
                    reasons[pointing].append(f"{sid}: {sol['reason']}")
        wcs_futs = {}
        for pointing, sids in by_pointing.items():
            if pointing not in solved:
                for sid in sids:
                    out.failed[sid] = "; ".join(reasons[pointing]) or "not solved"
                continue
            src_sid, sol = solved[pointing]
            for sid in sids:
                st = registration.stacks[sid]
                if sid != src_sid and sol.get("wcs_header"):
                    write_wcs(st["path"], fits.Header.fromstring(sol["wcs_header"], sep="\n"),
                              f"WCS of {src_sid} (same pointing grid)")
                if st.get("product_key"):  # the WCS went into the stack file in place
                    db.refresh_product(st["product_key"], st["path"])
                checksum = sha256_file(st["path"])
                out.solutions[sid] = {"path": st["path"], "solver": sol["solver"],
                                      "solved_on": src_sid, "n_matched": sol["n_matched"],
                                      "rms_arcsec": sol["rms_arcsec"],
                                      "n_rejected": sol.get("n_rejected"),
                                      "sip_degree": sol.get("sip_degree"),
                                      "cv_arcsec": sol.get("cv_arcsec"),
                                      "residual_plot": sol.get("residual_plot"),
                                      "attempts": sol["attempts"]}
                pkey = product_key("wcs", {"stack": checksum}, {"solvers": params.solvers},
                                   __version__)
                pid = db.record_product(run_id, "solved_stack", pkey, st["path"], checksum,
                                        {"stack": st["path"]}, {"solver": sol["solver"],
                                                                "solved_on": src_sid},
                                        __version__)
                db.add_qc(run_id, {"wcs_matched_stars": float(sol["n_matched"]),
                                   "wcs_rms_arcsec": sol["rms_arcsec"],
                                   "wcs_sip_degree": float(sol.get("sip_degree") or 1)},
                          product_id=pid)
                ok = [(raw, a) for raw, a in st["alignments"].items() if a["status"] == "ok"]
                wdir = session.run_dir / "stacks" / "wcs"
                paths = [str(wdir / f"{Path(raw).name.split('.')[0]}.wcs") for raw, _ in ok]
                wcs_futs[sid] = frame_wcs_task.submit(sol, [a for _, a in ok], st["shape"],
                                                      paths)
        for sid, fut in wcs_futs.items():
            try:
                out.solutions[sid]["frame_wcs"] = fut.result()
            except Exception as exc:  # noqa: BLE001
                out.solutions[sid]["frame_wcs_error"] = f"{type(exc).__name__}: {exc}"
        counters.update({"solved": len(out.solutions), "failed": len(out.failed),
                         "pointings_solved": len(solved)})
        logger.info("solved %d/%d stacks (%d/%d pointings)%s", len(out.solutions),
                    len(registration.stacks), len(solved), len(by_pointing),
                    ("; failed: " + "; ".join(f"{k}: {v}" for k, v in out.failed.items()))
                    if out.failed else "")
        rows = [{"stack": k, "solver": v["solver"], "solved_on": v["solved_on"],
                 "matched": v["n_matched"], "rms_arcsec": round(v["rms_arcsec"] or 0.0, 4),
                 "sip_degree": v.get("sip_degree") or "TAN",
                 "residual_plot": v.get("residual_plot") or ""}
                for k, v in out.solutions.items()]
        md = [f"# Plate solving: {len(out.solutions)}/{len(registration.stacks)} stacks", ""]
        md += [f"- `{r['stack']}`: {r['solver']} on `{r['solved_on']}`, {r['matched']} stars, "
               f"RMS {r['rms_arcsec']}\", distortion {r['sip_degree']}"
               + (f" (residuals: `{r['residual_plot']}`)" if r["residual_plot"] else "")
               for r in rows]
        md += [f"- `{k}` not solved: {v}" for k, v in out.failed.items()]
        create_markdown_artifact("\n".join(md), key="astrometry-summary")
        if rows:
            create_table_artifact(rows, key="astrometry-stacks", description="Plate solutions")
        if registration.stacks and not out.solutions:
            raise NothingSolved(f"no stack solved (0 of {len(registration.stacks)}): "
                                + "; ".join(f"{k}: {v}" for k, v in out.failed.items()))


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
    logger = get_run_logger()
    db, run_id = session.db, session.run_id
    out = MosaicOutcome()
    groups: dict[str, list[str]] = {}
    for sid in solved.solutions:
        cluster, _, filt, cls = sid.split("/")
        groups.setdefault(f"{cluster}/{filt}/{cls}", []).append(registration.stacks[sid]["path"])
    with recorded_stage(session, "mosaic") as counters:
        futs = {}
        for mid, paths in sorted(groups.items()):
            inputs = {"stacks": sorted(sha256_file(p) for p in paths)}
            pkey = product_key("mosaic", inputs, {}, __version__)
            found = db.find_product(pkey)
            if found is not None:
                out.mosaics[mid] = {"path": found.path, "members": paths, "reused": True}
                db.record_product(run_id, "mosaic", pkey, found.path, found.checksum, inputs,
                                  {}, __version__)
                continue
            dest = session.run_dir / "mosaics" / f"{mid.replace('/', '_')}.fits"
            futs[mid] = (pkey, inputs, mosaic_task.submit(paths, str(dest), mid))
        for mid, (pkey, inputs, fut) in futs.items():
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001
                out.failed[mid] = f"{type(exc).__name__}: {exc}"
                continue
            out.mosaics[mid] = res
            pid = db.record_product(run_id, "mosaic", pkey, res["path"], res["checksum"],
                                    inputs, {}, __version__)
            db.add_qc(run_id, res["qc"], product_id=pid)
        counters.update({"mosaics": len(out.mosaics), "failed": len(out.failed)})
        logger.info("%d mosaics%s", len(out.mosaics),
                    f"; failed: {out.failed}" if out.failed else "")
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
    session = open_session(params.data, params.out, params.profile,
                           params.model_dump(mode="json"), run_id=run_id)
    with closing_failed_run(session):
        inv = run_inventory_stage(session, params)
        plan = run_plan_stage(session, params, inv)
        cal = run_calibrate_stage(session, params, inv, plan)
        reg = run_register_stage(session, params, cal, inv)
        sol = run_solve_stage(session, params, reg)
        mos = run_mosaic_stage(session, params, reg, sol)
    if run_id is None:
        session.db.finish_run(session.run_id, "succeeded")
    return {"run_id": session.run_id, "run_dir": str(session.run_dir),
            "registration": reg.to_dict(), "solve": sol.to_dict(), "mosaic": mos.to_dict()}


def main(argv: list[str] | None = None) -> int:
    """Command line: register, solve and mosaic a night."""
    ap = argparse.ArgumentParser(prog="python -m flows.register", description=__doc__)
    ap.add_argument("--data", required=True, help="raw night folder")
    ap.add_argument("--out", default=default_out_root(), help="output root")
    ap.add_argument("--profile", help="instrument profile name or TOML file")
    ap.add_argument("--reference-catalog", help="local reference catalogue for plate solving")
    ap.add_argument("--runner", choices=["dask", "threads"], default="dask")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    params = RegisterParams(data=args.data, out=args.out, profile=args.profile,
                            reference_catalog=args.reference_catalog,
                            runner=RunnerSettings(kind=args.runner, n_workers=args.workers))
    result = register_flow.with_options(task_runner=make_task_runner(params.runner))(params)
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
