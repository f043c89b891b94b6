"""Collect what a run produced, from its folder and the run database, into a
:class:`~tgpcore.report.model.Report`.

Nothing here assumes that a stage ran: every section is built from what is there (database
rows, product files, ``membership/*/membership.json``, ``fit/*/fit.json``, figures), and says
plainly when its stage was not built, failed or did not run.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from tgpcore.report.files import read_json as _read_json
from tgpcore.report.files import read_png as _png
from tgpcore.report.model import Figure, Report, Section, Table
from tgpcore.report.thumbnails import fits_thumbnail
from tgpcore.rundb.models import Product
from tgpcore.rundb.repository import RunDB

# Which stage's products each section shows.
SECTION_STAGES = {
    "masters": "calibrate", "frame-qc": "calibrate", "stacks": "register", "solve": "solve",
    "mosaics": "mosaic", "photometry": "photometry", "photcal": "photcal",
    "membership": "membership", "fit": "isochrone_fit",
}
# Product kinds with a section of their own (others go to "Other products").
KNOWN_KINDS = ("master_bias", "master_dark", "master_flat", "calibrated", "stack",
               "solved_stack", "mosaic", "stack_catalog", "instrumental_catalog",
               "photcal_solution", "calibrated_catalog", "gaia_catalog", "members",
               "isochrone_fit", "report")
# Columns of a photometric solution (``m_std - m_inst = zp - k X + c colour``), by product
# parameter name, with their errors.
SOLUTION_TERMS = (("zp", "zp_err"), ("k", "k_err"), ("c", "c_err"))
PARAMETER_LABELS = {"log_age": "log age", "dm": "(m-M)0", "ebv": "E(B-V)", "mh": "[M/H]"}
MAX_OTHER_FIGURES = 40
#: The runner's record of a stage result beside its product (``<product>.result.json``):
#: bookkeeping, not a product to show.
RESULT_SIDECAR = ".result.json"
#: JSON products whose content a section already shows as its own table (photcal's outcome:
#: the solution table at the top of the section, with per-star residuals in the figures).
SUMMARISED_ELSEWHERE = frozenset({"outcome.json"})
#: Sections whose tables are QC detail, folded away under the science.
FOLDED = {"run", "stages", "frames", "frame-qc", "masters", "stacks", "mosaics", "photometry",
          "products", "solve", "fit"}
#: Sections whose figures are shown large.
LARGE = {"solve", "photcal", "fit", "membership", "science", "night"}
MAX_THUMBNAILS = 60


def fmt(value: Any) -> str:
    """A value as short text: floats to 4 significant digits, None as '–'."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.6g}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 2)


def safe_db_label(url: str | None) -> str:
    """A database URL with any password hidden."""
    if not url:
        return "–"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL: show nothing of it
        return "(unparseable database URL)"


class _Gatherer:
    """Builds the sections of one run's report (one instance per report)."""

    def __init__(self, run_dir: Path, db: RunDB | None, run_id: str,
                 stages: Sequence[tuple[str, str]], outcome: Mapping[str, Any] | None,
                 db_url: str | None, current_stage: str | None) -> None:
        self.run_dir = run_dir
        self.db = db
        self.run_id = run_id
        self.stages = list(stages)
        self.outcome = dict(outcome or {})
        self.db_url = db_url
        self.current_stage = current_stage
        self.run = db.get_run(run_id) if db is not None else None
        self.events = db.stage_events(run_id) if self.run is not None else []
        self.products = db.products(run_id) if self.run is not None else []
        self.embedded: set[Path] = set()
        self.status = self._stage_statuses()

    def run_status(self) -> str:
        """The run's status. A report built as the run's own last stage sees the run still
        'running' in the database: it shows the status the run is closing with instead."""
        if self.run is None:
            return "unknown"
        if self.run.status == "running" and self.current_stage:
            others = [st for name, (st, _) in self.status.items() if name != self.current_stage]
            return ("partial" if {"failed", "partial", "skipped", "not_built"} & set(others)
                    else "succeeded")
        return self.run.status

    # stage states -----------------------------------------------------------------------

    def _stage_statuses(self) -> dict[str, tuple[str, str | None]]:
        """(status, message) of every stage: its latest event, else the run's outcome."""
        out: dict[str, tuple[str, str | None]] = {}
        for e in self.events:
            out[e.stage] = (e.status, e.message)
        failed = self.outcome.get("failed") or {}
        for name in self.outcome.get("not_built") or []:
            out.setdefault(name, ("not_built", f"stage '{name}' is not built yet"))
        for name, message in failed.items():
            out.setdefault(name, ("failed", str(message)))
        if self.current_stage:
            out[self.current_stage] = ("succeeded", "this report")
        for name, _ in self.stages:
            out.setdefault(name, ("not run", None))
        return out

    def stage_note(self, stage: str) -> str | None:
        """A plain sentence when ``stage`` did not succeed, else None."""
        status, message = self.status.get(stage, ("not run", None))
        if status == "succeeded":
            return None
        what = {"not_built": "is not built yet", "failed": "failed", "skipped": "was skipped",
                "running": "did not finish (still running, or the run was killed)",
                "not run": "was not run"}.get(status, status)
        if message and f"'{stage}'" in message:
            return message[0].upper() + message[1:]  # the message names the stage already
        return f"Stage '{stage}' {what}" + (f": {message}" if message else ".")

    # helpers ----------------------------------------------------------------------------

    def _section(self, key: str, title: str) -> Section:
        stage = SECTION_STAGES.get(key.split(":")[0])
        sec = Section(key=key, title=title, stage=stage,
                      stage_status=self.status.get(stage, ("not run", None))[0] if stage else None)
        return sec

    def _product_qc(self) -> dict[int, dict[str, float | None]]:
        """QC figures of this run's products (not per-frame ones), by product id."""
        if self.db is None or self.run is None:
            return {}
        return self.db.product_qc(self.run_id)

    def _products(self, kinds: Iterable[str]) -> list[Product]:
        kinds = set(kinds)
        return [p for p in self.products if p.kind in kinds]

    def _files(self, kinds: Iterable[str], folder: str) -> list[Path]:
        """Product files of these kinds (from the database, wherever they are), plus any
        FITS file in ``<run_dir>/<folder>`` the database does not know."""
        paths = [Path(p.path) for p in self._products(kinds)
                 if p.path and p.status == "ok" and Path(p.path).is_file()]
        known = {q.resolve() for q in paths}
        paths += [q for q in sorted((self.run_dir / folder).glob("*.fits"))
                  if q.resolve() not in known]
        return list(dict.fromkeys(paths))

    def _target_sections(self, key: str, title: str, name: str, kinds: Iterable[str],
                         build: Callable[[Path, dict[str, Any], Section], Section], *,
                         stage: str, missing: str, top: bool = False) -> list[Section]:
        """One section per folder that holds a per-target result file ``name``: those below
        ``<run_dir>/<key>`` (and that folder itself with ``top``), and those of the database's
        products of these kinds, sorted; each made by ``build(folder, the file's JSON, an
        empty section "<key>:<folder>")``. Without any, one section that says why (the
        stage's status, else ``missing``)."""
        dirs = {p.parent for p in (self.run_dir / key).glob(f"*/{name}")}
        if top and (self.run_dir / key / name).is_file():
            dirs.add(self.run_dir / key)
        dirs |= {Path(p.path).parent for p in self._products(kinds) if p.path
                 and (Path(p.path).parent / name).is_file()}
        if not dirs:
            sec = self._section(key, title)
            sec.notes.append(self.stage_note(stage) or missing)
            return [sec]
        return [build(d, _read_json(d / name) or {},
                      self._section(f"{key}:{d.name}", f"{title}: {d.name}"))
                for d in sorted(dirs)]

    def _figures_in(self, folder: Path, order: Sequence[str] = ()) -> list[Figure]:
        """Every PNG of a folder (those named in ``order`` first), embedded once."""
        return self._figure_list(sorted(
            folder.glob("*.png"),
            key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.name)))

    def _figure_list(self, paths: Sequence[Path]) -> list[Figure]:
        """Figures of these PNG files, leaving out any already embedded or not PNG."""
        figures = []
        for path in paths:
            content = _png(path)
            if content is None or path.resolve() in self.embedded:
                continue
            self.embedded.add(path.resolve())
            figures.append(Figure(title=path.stem.replace("_", " "), png=content,
                                  caption=str(path.relative_to(self.run_dir))
                                  if path.is_relative_to(self.run_dir) else str(path)))
        return figures

    # sections ---------------------------------------------------------------------------

    def run_section(self) -> Section:
        sec = Section(key="run", title="Run")
        r = self.run
        if r is None:
            sec.notes.append(f"Run {self.run_id} is not in the run database "
                             f"({safe_db_label(self.db_url)}); this report shows the files "
                             f"of {self.run_dir} only.")
            return sec
        status = self.run_status()
        finished, wall = r.finished_at, _seconds(r.started_at, r.finished_at)
        if r.finished_at is None and self.current_stage and r.started_at is not None:
            # this report is the run's last step: the run ends as it is written
            now = dt.datetime.now(dt.UTC)
            start = r.started_at if r.started_at.tzinfo else r.started_at.replace(tzinfo=dt.UTC)
            finished, wall = "now (with this report)", _seconds(start, now)
        rows = [["run id", r.id], ["status", status], ["message", r.message],
                ["raw data", r.data_dir], ["products", r.out_dir],
                ["instrument profile", r.profile], ["software version", r.software_version],
                ["started", r.started_at], ["finished", finished],
                ["wall time (s)", wall],
                ["run database", safe_db_label(self.db_url)]]
        sec.tables.append(Table(columns=["", "value"], rows=rows))
        if r.params:
            sec.tables.append(Table(
                title="Parameters", columns=["parameter", "value"],
                rows=[[k, json.dumps(v) if isinstance(v, (dict, list)) else v]
                      for k, v in sorted(r.params.items())]))
        return sec

    def stages_section(self) -> Section:
        sec = Section(key="stages", title="Stages")
        descriptions = dict(self.stages)
        rows = []
        for e in self.events:
            rows.append([e.stage, descriptions.get(e.stage, ""), e.status, e.started_at,
                         _seconds(e.started_at, e.finished_at), e.message,
                         fmt(e.counters) if e.counters else None])
        seen = {e.stage for e in self.events}
        timings = self.outcome.get("timings") or {}
        for name, desc in self.stages:
            if name not in seen:
                status, message = self.status[name]
                rows.append([name, desc, status, None, timings.get(name), message, None])
        sec.tables.append(Table(
            columns=["stage", "what", "status", "started", "seconds", "message", "counters"],
            rows=rows, note="One row per stage event, in the order they started; a stage "
                            "that ran more than once (a resumed run) has several rows."))
        return sec

    def frames_section(self) -> Section:
        sec = Section(key="frames", title="Frames and rejections")
        if self.db is None or self.run is None:
            sec.notes.append("No run database entry: frame lists are not available.")
            return sec
        summary = self.db.run_summary(self.run_id)["frames"]
        sec.tables.append(Table(
            title="Frames by kind and status", columns=["kind/status", "frames"],
            rows=[[k, n] for k, n in sorted(summary["by_kind_status"].items())]))
        rejected = self.db.frames(self.run_id, status="rejected")
        rows = [[Path(f.path).name, f.kind, f.filter, f.cluster, f.pointing, f.reason]
                for f in rejected]
        paths = {f.path for f in rejected}
        _, entries = self.db.plan(self.run_id)
        rows += [[Path(p).name, "plan", None, None, None, f"calibration plan: {e.reason}"]
                 for p, e in entries if e.status == "refused" and p not in paths]
        if rows:
            sec.tables.append(Table(title=f"Rejected frames ({len(rows)})",
                                    columns=["file", "kind", "filter", "cluster", "pointing",
                                             "reason"], rows=rows))
        else:
            sec.notes.append(f"No frame was rejected ({summary['total']} frames inventoried).")
        return sec

    def frame_qc_section(self) -> Section:
        sec = self._section("frame-qc", "Per-frame QC")
        if self.db is None or self.run is None:
            return sec
        per_frame: dict[str, dict[str, Any]] = {}
        keys: list[str] = []
        for f, figures in self.db.frame_qc(self.run_id):
            per_frame[f.path] = {"file": Path(f.path).name, "kind": f.kind, "filter": f.filter,
                                 "exptime_s": f.exptime_s, "airmass": f.airmass,
                                 "status": f.status, **figures}
            keys += [k for k in figures if k not in keys]
        if not per_frame:
            sec.notes.append(self.stage_note("calibrate") or "No per-frame QC was recorded.")
            return sec
        cols = ["file", "kind", "filter", "exptime_s", "airmass", "status", *sorted(keys)]
        sec.tables.append(Table(columns=cols,
                                rows=[[r.get(c) for c in cols] for r in per_frame.values()]))
        return sec

    def product_qc_table(self, kinds: Sequence[str], title: str = "") -> Table | None:
        qc = self._product_qc()
        products = self._products(kinds)
        if not products:
            return None
        keys = sorted({k for p in products for k in qc.get(p.id, {})})
        rows = [[Path(p.path).name if p.path else p.key[:12], p.kind, p.status,
                 *[qc.get(p.id, {}).get(k) for k in keys]] for p in products]
        return Table(title=title, columns=["product", "kind", "status", *keys], rows=rows)

    def masters_section(self) -> Section:
        sec = self._section("masters", "Calibration masters")
        table = self.product_qc_table(("master_bias", "master_dark", "master_flat"))
        if table is None:
            sec.notes.append(self.stage_note("calibrate") or "No master was recorded.")
        else:
            sec.tables.append(table)
        return sec

    def image_section(self, key: str, title: str, kinds: Sequence[str],
                      folder: str) -> Section:
        sec = self._section(key, title)
        table = self.product_qc_table(kinds)
        if table is not None:
            sec.tables.append(table)
        files = self._files(kinds, folder)
        for path in files[:MAX_THUMBNAILS]:
            try:
                png = fits_thumbnail(path)
            except (OSError, ValueError) as exc:
                sec.notes.append(f"{path.name}: no thumbnail ({type(exc).__name__}: {exc})")
                continue
            sec.figures.append(Figure(title=path.stem, png=png,
                                      caption=f"{path.name} (ZScale)"))
        if len(files) > MAX_THUMBNAILS:
            sec.notes.append(f"{len(files) - MAX_THUMBNAILS} more images not shown.")
        note = self.stage_note(sec.stage) if sec.stage else None
        if note:
            sec.notes.insert(0, note)
        elif not files and table is None:
            sec.notes.append("No images were produced.")
        return sec

    def solve_section(self) -> Section:
        sec = self._section("solve", "Plate solutions")
        table = self.product_qc_table(("solved_stack",))
        if table is not None:
            sec.tables.append(table)
        # residuals against position, one figure per solved pointing
        sec.figures += self._figure_list(sorted((self.run_dir / "plots").glob("astrometry_*.png")))
        note = self.stage_note("solve")
        if note:
            sec.notes.append(note)
        elif table is None:
            sec.notes.append("No plate solution was recorded.")
        return sec

    def json_section(self, key: str, title: str, folder: str,
                     kinds: Sequence[str] = ()) -> Section:
        """A section for a stage whose products are catalogues, JSON summaries and figures:
        the QC of its product ``kinds``, every JSON in ``<run_dir>/<folder>`` flattened into
        a table, and the figures there."""
        sec = self._section(key, title)
        root = self.run_dir / folder
        for kind in kinds:
            table = self.product_qc_table((kind,), title=kind.replace("_", " "))
            if table is not None:
                sec.tables.append(table)
        if root.is_dir():
            for path in sorted(root.rglob("*.json")):
                if path.name.endswith(RESULT_SIDECAR) or path.name in SUMMARISED_ELSEWHERE:
                    continue
                data = _read_json(path)
                if data is None:
                    continue
                sec.tables.append(Table(title=str(path.relative_to(self.run_dir)),
                                        columns=["quantity", "value"],
                                        rows=[[k, v] for k, v in flatten(data)]))
            for sub in sorted({p.parent for p in root.rglob("*.png")}):
                sec.figures += self._figures_in(sub)
        note = self.stage_note(key)
        if note:
            sec.notes.insert(0, note)
        elif sec.empty:
            sec.notes.append(f"No {title.lower()} products were found.")
        return sec

    def photcal_section(self) -> Section:
        """The photometric solution: zero point, extinction and colour term per filter with
        their errors (``photcal_solution`` products), calibrated catalogues, residual plots."""
        sec = self.json_section("photcal", "Photometric solution", "photcal",
                                ("calibrated_catalog",))
        rows = []
        for p in self._products(("photcal_solution",)):
            s = p.params or {}
            row = [s.get("filter"), s.get("colour")]
            for term, err in SOLUTION_TERMS:
                row += [s.get(term), s.get(err)]
            row += [s.get("rms"), s.get("n_used"), s.get("n_rejected"), s.get("method")]
            rows.append(row)
        if rows:
            sec.tables.insert(0, Table(
                title="Solutions: m_std − m_inst = ZP − k·X + c·colour",
                columns=["filter", "colour", "ZP", "ZP err", "k", "k err", "c", "c err",
                         "rms", "standards used", "rejected", "method"], rows=rows))
            if sec.notes and sec.notes[-1].startswith("No "):
                sec.notes.pop()
        sec.figures += self._figure_list(sorted((self.run_dir / "plots").glob("photcal*.png")))
        return sec

    def membership_sections(self) -> list[Section]:
        return self._target_sections("membership", "Membership", "membership.json", ("members",),
                                     self._membership, stage="membership",
                                     missing="No membership product.")

    def _membership(self, folder: Path, m: dict[str, Any], sec: Section) -> Section:
        sec.notes.append(f"{m.get('status', '?')}: {m.get('message', '')}")
        c, k, n = m.get("centroid"), m.get("king"), m.get("counts") or {}
        rows: list[list[Any]] = []
        if c:
            for q, unit in (("pmra_masyr", "mas/yr"), ("pmdec_masyr", "mas/yr"),
                            ("parallax_mas", "mas")):
                err = c.get(q.replace("_mas", "_err_mas"))
                rows.append([q, c.get(q), err, unit, c.get("method")])
        if k:
            for q in ("rc_arcmin", "rt_arcmin", "r50_members_arcmin"):
                if q in k:
                    rows.append([f"King {q}", k.get(q), k.get(q.replace("_arcmin", "_err_arcmin")),
                                 "arcmin", k.get("method")])
        if rows:
            sec.tables.append(Table(title="Fitted parameters",
                                    columns=["quantity", "value", "error", "unit", "method"],
                                    rows=rows))
        if n:
            sec.tables.append(Table(title="Counts", columns=["count", "stars"],
                                    rows=[[key, v] for key, v in n.items()]))
        sec.figures = self._figures_in(folder, ("members_pm", "members_radial", "members_cmd",
                                                "members_sky"))
        return sec

    def fit_sections(self) -> list[Section]:
        return self._target_sections("fit", "Isochrone fit", "fit.json", ("isochrone_fit",),
                                     self._fit, stage="isochrone_fit",
                                     missing="No isochrone fit product.", top=True)

    def _fit(self, folder: Path, f: dict[str, Any], sec: Section) -> Section:
        rows = []
        for name, p in f.items():
            if isinstance(p, Mapping) and {"p16", "p50", "p84"} <= set(p):
                rows.append([PARAMETER_LABELS.get(name, name), p["p50"],
                             _diff(p["p50"], p["p16"]), _diff(p["p84"], p["p50"]),
                             p.get("best"), p.get("unit"), bool(p.get("fixed"))])
        if rows:
            sec.tables.append(Table(title="Fitted parameters (posterior median and 68% "
                                          "interval)",
                                    columns=["parameter", "median", "−err", "+err", "best",
                                             "unit", "fixed"], rows=rows))
        derived = f.get("derived") or {}
        drows = [[name, d.get("p50"), _diff(d.get("p50"), d.get("p16")),
                  _diff(d.get("p84"), d.get("p50"))]
                 for name, d in derived.items() if isinstance(d, Mapping)]
        if drows:
            sec.tables.append(Table(title="Derived", columns=["quantity", "median", "−err",
                                                              "+err"], rows=drows))
        if f.get("method"):
            sec.notes.append(f"Method: {f['method']}")
        data = f.get("data")
        if isinstance(data, Mapping):
            sec.notes.append("Data: " + fmt({k: v for k, v in data.items()
                                             if not isinstance(v, (dict, list))}))
        sec.figures = self._figures_in(folder, ("cmd", "colour_colour", "corner"))
        if not f:
            sec.notes.append(f"{folder / 'fit.json'} could not be read.")
        return sec

    def science_sections(self) -> list[Section]:
        """The first screen: each fitted cluster's parameters and diagrams, then the night's
        photometric quality (:mod:`tgpcore.report.science`)."""
        from tgpcore.report import science

        truth = science.simulated_truth(self.run.data_dir if self.run is not None else None)
        lookup = None
        if truth is None and self.db is not None:
            from tgpcore.catalogs.literature import literature_parameters
            from tgpcore.settings import offline

            def lookup(cluster: str) -> list[dict[str, Any]]:
                return literature_parameters(cluster, cache=self.db, offline=offline())

        out = []
        for cluster, folders in science.fitted_clusters(self.run_dir).items():
            sec = science.cluster_section(self.run_dir, cluster, folders, truth,
                                          science.literature_for(cluster, lookup))
            sec.large_figures = True
            for f in sec.figures:
                self.embedded.add((self.run_dir / f.caption).resolve())
            out.append(sec)
        solutions = [p.params or {} for p in self._products(("photcal_solution",))]
        sky = {}
        if self.db is not None and self.run is not None:
            sky = {k.split(":", 1)[1]: v for k, v in self.db.qc(self.run_id).items()
                   if k.startswith("sky_mag_arcsec2:") and v is not None}
        limits: dict[str, float] = {}
        for cat in sorted((self.run_dir / "catalogs").glob("*_calibrated.ecsv")):
            limits.update(science.limiting_magnitudes(cat))
        table = science.night_quality_table(solutions, sky, limits)
        if table is not None:
            night = Section(key="night", title="The night: zero points, extinction, sky and "
                                               "depth", stage="photcal",
                            stage_status=self.status.get("photcal", ("not run", None))[0])
            night.tables.append(table)
            out.append(night)
        if not out:
            sec = Section(key="science", title="The cluster's parameters",
                          stage="isochrone_fit",
                          stage_status=self.status.get("isochrone_fit", ("not run", None))[0])
            sec.notes.append(self.stage_note("isochrone_fit") or "No cluster was fitted.")
            out.append(sec)
        return out

    def products_section(self) -> Section:
        sec = Section(key="products", title="Products")
        if not self.products:
            sec.notes.append("No product was recorded in the run database.")
            return sec
        counts: dict[str, list[int]] = {}
        for p in self.products:
            ok_failed = counts.setdefault(p.kind, [0, 0])
            ok_failed[0 if p.status == "ok" else 1] += 1
        sec.tables.append(Table(columns=["kind", "ok", "failed"],
                                rows=[[k, v[0], v[1]] for k, v in sorted(counts.items())]))
        other = self.product_qc_table(sorted({p.kind for p in self.products
                                              if p.kind not in KNOWN_KINDS}),
                                      title="Other products")
        if other is not None:
            sec.tables.append(other)
        return sec

    def other_figures_section(self) -> Section | None:
        rest = [p for p in sorted(self.run_dir.rglob("*.png"))
                if p.resolve() not in self.embedded]
        if not rest:
            return None
        sec = Section(key="other-figures", title="Other figures")
        for folder in sorted({p.parent for p in rest}):
            sec.figures += self._figures_in(folder)
            if len(sec.figures) >= MAX_OTHER_FIGURES:
                sec.notes.append("Further figures are not shown.")
                break
        return sec

    def alerts(self) -> list[str]:
        """Plain sentences about the stages that did not succeed."""
        groups: dict[str, list[str]] = {}
        for name, _ in self.stages or [(s, "") for s in self.status]:
            status, message = self.status.get(name, ("not run", None))
            if status != "succeeded":
                groups.setdefault(status, []).append(
                    name + (f" ({message})" if message and status != "not_built" else ""))
        labels = {"not_built": "Not built yet", "failed": "Failed", "skipped": "Skipped",
                  "running": "Did not finish", "not run": "Not run"}
        return [f"{labels.get(status, status)}: {'; '.join(names)}."
                for status, names in groups.items()]


def _diff(a: Any, b: Any) -> float | None:
    try:
        return float(a) - float(b)
    except (TypeError, ValueError):
        return None


def flatten(data: Any, prefix: str = "", limit: int = 400) -> list[tuple[str, Any]]:
    """Flatten nested JSON into ``(dotted.key, scalar)`` pairs (long lists shortened).

    Parameters
    ----------
    data : Any
        Parsed JSON.
    prefix : str
        Key prefix of ``data``.
    limit : int
        At most this many pairs.

    Returns
    -------
    list of (str, Any)
    """
    out: list[tuple[str, Any]] = []

    def walk(value: Any, key: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, v in enumerate(value[:20]):
                walk(v, f"{key}[{i}]")
        elif isinstance(value, list):
            shown = ", ".join(fmt(v) for v in value[:12])
            out.append((key, shown + (f", … ({len(value)} values)" if len(value) > 12 else "")))
        else:
            out.append((key, value))

    walk(data, prefix)
    return out


def gather_report(run_dir: str | Path, db: RunDB | None, run_id: str | None = None, *,
                  stages: Sequence[tuple[str, str]] = (), outcome: Mapping[str, Any] | None = None,
                  db_url: str | None = None, current_stage: str | None = None) -> Report:
    """Collect everything a run produced into a report.

    Parameters
    ----------
    run_dir : str or Path
        The run's product folder, ``<out>/<run-id>``.
    db : RunDB or None
        The run database (None: the report shows the folder's files only).
    run_id : str, optional
        The run id; the folder's name by default.
    stages : sequence of (name, description)
        The pipeline's stages in order; stages without an event are reported as not run.
    outcome : mapping, optional
        The full run's result, for stages the database has no event of: ``not_built``
        (names), ``failed`` (name -> message), ``timings`` (name -> seconds).
    db_url : str, optional
        The database URL to show (its password is hidden).
    current_stage : str, optional
        The stage that is building this report (shown as succeeded).

    Returns
    -------
    Report
    """
    run_dir = Path(run_dir)
    run_id = run_id or run_dir.name
    g = _Gatherer(run_dir, db, run_id, stages, outcome, db_url, current_stage)
    science = g.science_sections()
    sections = [
        *science,
        g.solve_section(), g.photcal_section(),
        g.run_section(), g.stages_section(), g.frames_section(), g.frame_qc_section(),
        g.masters_section(),
        g.image_section("stacks", "Stacks", ("stack",), "stacks"),
        g.image_section("mosaics", "Mosaics", ("mosaic",), "mosaics"),
        g.json_section("photometry", "Photometry", "photometry",
                       ("stack_catalog", "instrumental_catalog")),
        *g.membership_sections(), *g.fit_sections(), g.products_section(),
    ]
    for sec in sections[len(science):]:
        if sec.key in FOLDED:
            sec.folded = True
        if sec.key.split(":")[0] in LARGE:
            sec.large_figures = True
    other = g.other_figures_section()
    if other is not None:
        sections.append(other)
    status = g.run_status()
    return Report(title=f"tgp night report — run {run_id} ({status})", run_id=run_id,
                  generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                  alerts=g.alerts(), sections=sections,
                  alarms=db.alarms(run_id) if db is not None else [])
