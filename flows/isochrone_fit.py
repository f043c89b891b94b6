"""Flow: fit age, distance, reddening and [M/H] of a cluster: the isochrone-fit stage of a run
(:func:`run_isochrone_fit_stage`), and the flow behind ``tgp fit --record``. The command line,
its examples and its products are described in :mod:`flows.commands.fit`; without
``--record`` it runs the library directly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from flows.runner import Item, StageRunner, stage_run
from flows.runners import RunnerSettings
from flows.session import RunSession, closing_failed_run, open_session, raise_alarms
from flows.settings import default_out_root
from tasks.isochrone_fit import isochrone_fit_task
from tgpcore.fitting.plan import GAIA, JOHNSON, fit_items, primary_system
from tgpcore.io.checksum import sha256_file

ISOCHRONE_FIT_PARAMS_VERSION = 1
_NAMES = {"log_age": "log age (dex)", "dm": "(m-M)0 (mag)", "ebv": "E(B-V) (mag)",
          "mh": "[M/H] (dex)"}


class FitOptions(BaseModel):
    """The isochrone-fit stage's options in a full run."""

    fit_walkers: int = Field(16, ge=4, description="Isochrone fit: emcee walkers")
    fit_steps: int = Field(120, ge=20, description="Isochrone fit: emcee steps per walker")
    fit_burn: int = Field(40, ge=0, description="Isochrone fit: burn-in steps discarded")
    fit_max_steps: int = Field(1200, ge=0, description="Isochrone fit: cap of the chain "
                                                       "(sampled to 50 autocorrelation times)")
    fit_seed: int = Field(0, description="Isochrone fit: random seed")


class IsochroneFitParams(BaseModel):
    """Parameters of the isochrone-fit flow (a typed form in the Prefect UI)."""

    catalog: str = Field(..., description="Photometric table: Johnson U B V (+ errors) and/or "
                                          "Gaia G BP RP; CSV, ECSV, FITS or VOTable")
    members: str | None = Field(None, description="Membership table (members.ecsv of tgp "
                                                  "members) joined on source_id")
    out: str = Field(..., description="Output folder for fit.json, fit.h5 and the figures")
    system: Literal["auto", "johnson", "gaia"] = Field(
        "auto", description="Photometry to fit: all there is, Johnson only, or Gaia only")
    fix: dict[str, float] = Field(default_factory=dict,
                                  description="Fixed parameters, e.g. {'mh': 0.0}")
    priors: list[str] = Field(default_factory=list,
                              description="Priors: 'dm=9.7+-0.05' (Gaussian), "
                                          "'log_age=9:9.8' (bounds)")
    parallax_mas: float | None = Field(None, description="Cluster parallax for a distance "
                                                         "prior (mas)")
    parallax_error_mas: float | None = Field(None, description="Its uncertainty (mas)")
    isochrones: str | None = Field(None, description="CMD 3.x file/folder or HDF5 library "
                                                     "(default: packaged PARSEC grid)")
    cache_dir: str | None = Field(None, description="Isochrone HDF5 cache folder")
    p_min: float = Field(0.02, ge=0, le=1, description="Leave out stars with lower membership")
    mag_max: float | None = Field(None, description="Leave out stars fainter than this in V "
                                                    "(or G when there is no V)")
    n_walkers: int = Field(16, ge=4, description="emcee walkers")
    n_steps: int = Field(180, ge=20, description="Least emcee steps per walker (burn-in "
                                                  "included)")
    n_burn: int = Field(60, ge=0, description="Burn-in steps discarded")
    max_steps: int = Field(1200, ge=0, description="Cap of the chain: sample until it is "
                                                   "longer than 50 autocorrelation times or "
                                                   "this many steps (0: exactly n_steps)")
    restarts: int = Field(2, ge=1, description="Differential-evolution restarts")
    seed: int = Field(0, description="Random seed")
    parallax_prior: Literal["auto", "off"] = Field(
        "auto", description="Distance-modulus prior from the members' parallaxes when known")
    systematics: bool = Field(True, description="Compute the systematic error budget")
    zero_points: dict[str, float] = Field(
        default_factory=dict, description="Zero-point 1-sigma per band (mag), e.g. "
                                          "{'V': 0.02}; default: the catalogue's calibration")
    match_radius_arcsec: float = Field(1.0, gt=0, description="Radius of the positional "
                                                               "join of the member list")
    plots: bool = Field(True, description="Write the figures")
    record: bool = Field(False, description="Also record the run in the run database")
    out_root: str = Field(default_factory=default_out_root,
                          description="Run-database root used with record")
    runner: RunnerSettings = Field(default_factory=lambda: RunnerSettings(kind="threads"))

    def prior_specs(self) -> list[str]:
        """Fixed values and priors as text specs."""
        return [f"{k}={v}" for k, v in self.fix.items()] + list(self.priors)

    def options(self) -> dict[str, Any]:
        """Options of :func:`tgpcore.fitting.run.run_isochrone_fit`."""
        return {"n_walkers": self.n_walkers, "n_steps": self.n_steps, "n_burn": self.n_burn,
                "max_steps": self.max_steps, "restarts": self.restarts, "seed": self.seed,
                "p_min": self.p_min, "mag_max": self.mag_max,
                "systematics": self.systematics}

    def extras(self) -> dict[str, Any]:
        """Keyword arguments of :func:`tgpcore.fitting.run.run_isochrone_fit` beyond the
        options."""
        return {"parallax_prior": self.parallax_prior,
                "zero_points": dict(self.zero_points) or None,
                "match_radius_arcsec": self.match_radius_arcsec}

    def parallax(self) -> tuple[float, float] | None:
        """(parallax, error) if both are given."""
        if self.parallax_mas is None or self.parallax_error_mas is None:
            return None
        return self.parallax_mas, self.parallax_error_mas


def fit_markdown(out: dict[str, Any]) -> str:
    """Markdown summary of a fit for the Prefect UI."""
    r = out["result"]
    lines = ["# Isochrone fit", ""]
    for w in r.get("warnings", []):
        lines.append(f"> **Warning:** {w}")
    if r.get("warnings"):
        lines.append("")
    lines += ["| parameter | p50 | stat | sys | total | best |", "|---|---|---|---|---|---|"]
    for k, label in _NAMES.items():
        p = r[k]
        lines.append(f"| {label}{' (fixed)' if p['fixed'] else ''} | {p['p50']:.4f} | "
                     f"{p.get('err_stat', 0):.4f} | {p.get('err_sys', 0):.4f} | "
                     f"{p.get('err_total', 0):.4f} | {p['best']:.4f} |")
    plx = r.get("parallax_prior", {})
    lines += ["", "- parallax prior: " + (
        f"{plx['parallax_mas']:.4f} ± {plx['error_mas']:.4f} mas ({plx.get('source', '')})"
        if plx.get("used") else f"not used ({plx.get('reason', '')})")]
    d = r["derived"]
    lines += ["", f"- age {d['age_myr']['p50']:.0f} Myr, distance {d['distance_pc']['p50']:.0f} "
                  f"pc, A_V {d['av']['p50']:.3f} mag",
              f"- stars: {r['data']['n_stars']} ({', '.join(r['data']['observables'])}); "
              f"effective posterior samples: {r['diagnostics']['n_effective']:.0f}",
              f"- method: {r['method']}", "",
              f"- products: `{out['fit_json']}`, `{out['fit_h5']}`"]
    lines += [f"- figure: `{p}`" for p in out.get("figures", {}).values()]
    return "\n".join(lines)


def _artifacts(out: dict[str, Any]) -> None:
    create_markdown_artifact(fit_markdown(out), key="isochrone-fit-summary",
                             description="Cluster parameters from the isochrone fit")
    r = out["result"]
    create_table_artifact(
        [{"parameter": k, "p16": round(r[k]["p16"], 5), "p50": round(r[k]["p50"], 5),
          "p84": round(r[k]["p84"], 5), "err_stat": round(r[k].get("err_stat", 0), 5),
          "err_sys": round(r[k].get("err_sys", 0), 5),
          "err_total": round(r[k].get("err_total", 0), 5), "best": round(r[k]["best"], 5),
          "unit": r[k]["unit"], "fixed": r[k]["fixed"]} for k in _NAMES],
        key="isochrone-fit-parameters", description=r["method"])


def run_isochrone_fit_stage(session: RunSession, catalog: str | Path, members: str | Path | None,
                            out_dir: str | Path, params: IsochroneFitParams | None = None
                            ) -> dict[str, Any]:
    """The isochrone-fit stage inside an open run (what ``flows/full_run.py`` calls).

    Parameters
    ----------
    session : RunSession
        The run.
    catalog : str or Path
        The photometric catalogue (the catalogue stage's product, or any table).
    members : str or Path or None
        ``members.ecsv`` of the membership stage (None: weights from the catalogue, or 1).
    out_dir : str or Path
        Where products go (e.g. ``session.run_dir / "fit"``).
    params : IsochroneFitParams, optional
        Settings (defaults otherwise).

    Returns
    -------
    dict
        ``fit_json``, ``fit_h5``, ``figures`` (paths), ``summary`` (flat numbers: each
        parameter's p50, p16, p84 and total, statistical and systematic errors; converged,
        parallax_prior_used, n_warnings), ``warnings`` (text), ``result`` (the fit.json
        content), ``product_key``.
    """
    params = params or IsochroneFitParams(catalog=str(catalog), out=str(out_dir),
                                          members=str(members) if members else None)
    with stage_run(session, "isochrone_fit", "fits") as counts:
        done = StageRunner(session, counts).run([fit_item(catalog, members, out_dir, params)])
        out = _fitted(next(iter(done.values())))
        counts.message = fit_message(out)
    return out


def fit_item(catalog: str | Path, members: str | Path | None, out_dir: str | Path,
             params: IsochroneFitParams, fit_id: str = "fit") -> Item:
    """The runner's work item of one fit (keyed by its catalogue, members and settings)."""
    params_rec = {**params.options(), **params.extras(), "system": params.system,
                  "priors": params.prior_specs(), "parallax": params.parallax(),
                  "version": ISOCHRONE_FIT_PARAMS_VERSION}
    inputs = {"catalog": sha256_file(catalog),
              "members": sha256_file(members) if members else None}
    return Item(fit_id, "isochrone_fit", inputs, params_rec, submit=lambda: _Fit(
        isochrone_fit_task.submit(
            str(catalog), str(out_dir), str(members) if members else None, params.system,
            params.prior_specs(), params.parallax(), params.isochrones, params.cache_dir,
            params.options(), params.plots, params.extras())))


class _Fit:
    """A fit's future whose result names its product (``path``: the fit's HDF5)."""

    def __init__(self, fut: Any) -> None:
        self.fut = fut

    def result(self) -> dict[str, Any]:
        out = dict(self.fut.result())
        out["path"] = out["fit_h5"]
        out["qc"] = out["summary"]
        return out


def _fitted(done: Any) -> dict[str, Any]:
    """A fit's answer, reused or new; raises when the fit failed."""
    if not done.ok:
        raise RuntimeError(done.reason)
    out = dict(done.result)
    out["product_key"] = done.key
    for w in out.get("warnings", []):
        get_run_logger().warning("isochrone fit: %s", w)
    get_run_logger().info("isochrone fit: %s", fit_message(out))
    _artifacts(out)
    return out


def fit_message(out: dict[str, Any]) -> str:
    """One line of a fit's parameters (total errors) and warnings."""
    s = out["summary"]
    return (f"log age {s['log_age']:.3f}±{s['log_age_err']:.3f}, (m-M)0 "
            f"{s['dm']:.3f}±{s['dm_err']:.3f}, E(B-V) {s['ebv']:.3f}±"
            f"{s['ebv_err']:.3f}, [M/H] {s['mh']:+.3f}±{s['mh_err']:.3f}"
            " (total errors)"
            + (f"; {len(out['warnings'])} warning(s): "
               + "; ".join(out["warnings"]) if out.get("warnings") else ""))


def isochrone_fit_step(night: Any) -> dict[str, Any]:
    """Fit isochrones to every cluster of the run: our own photometry first, Gaia's as the
    check (:func:`tgpcore.fitting.plan.fit_items` decides which). One cluster's failure never
    stops the others; the two fits of a cluster are compared parameter by parameter."""
    from flows.crossmatch import matched_path

    membership = night.get("membership") or {}
    clusters = sorted(set(membership) | set(night.get("crossmatch") or {}))
    items = {}
    for cluster in clusters:
        m = membership.get(cluster) or {}
        gaia = (night.get("catalogs") or {}).get(cluster, {}).get("path")
        members = m.get("members") if m.get("status") == "ok" else None
        found = fit_items(cluster, matched_path(night.result, cluster), members, gaia,
                          night.session.run_dir / "fit")
        if not found:
            get_run_logger().info("isochrone fit: %s skipped (%s)", cluster,
                                  m.get("message") or "no matched catalogue and no members")
        items.update({f"{i.cluster}/{i.system}": i for i in found})
    with stage_run(night.session, "isochrone_fit", "fits") as counts:
        done = StageRunner(night.session, counts).run(
            [fit_item(i.catalog, i.members, i.out_dir, _fit_params(night.params, i), fid)
             for fid, i in items.items()])
        fits = {c: _cluster_fits(night.session, c, {i.system: done[f] for f, i in items.items()
                                                      if i.cluster == c})
                for c in sorted({i.cluster for i in items.values()})}
        if not fits:
            counts.status_override = "failed"
            counts.message = "isochrone fit: no cluster with members to fit"
    return fits


def _fit_params(params: Any, item: Any) -> IsochroneFitParams:
    return IsochroneFitParams(catalog=item.catalog, members=item.members, out=str(item.out_dir),
                              system=item.system, n_walkers=params.fit_walkers,
                              n_steps=params.fit_steps, n_burn=params.fit_burn,
                              max_steps=params.fit_max_steps, seed=params.fit_seed)


def _cluster_fits(session: Any, cluster: str, done: dict[str, Any]) -> dict[str, Any]:
    """A cluster's entry of the run's result: each fit, the primary one, their comparison."""
    entry: dict[str, Any] = {"status": "failed", "fits": {}}
    for system, d in done.items():
        if not d.ok:
            get_run_logger().error("isochrone fit of %s (%s) failed: %s", cluster, system,
                                   d.reason)
            entry["fits"][system] = {"status": "failed", "message": d.reason}
            continue
        entry["fits"][system] = {"status": "ok", **{k: d.result.get(k) for k in (
            "fit_json", "fit_h5", "figures", "summary")},
            "warnings": d.result.get("warnings", []),
            "label": _label(system, d.result.get("fit_json"))}
    ok = {k: v for k, v in entry["fits"].items() if v["status"] == "ok"}
    primary = primary_system(list(ok))
    if primary is None:
        entry["message"] = "; ".join(f"{k}: {v['message']}" for k, v in entry["fits"].items())
        return entry
    entry.update({"status": "ok", "photometry": primary, **{k: ok[primary][k] for k in
                  ("fit_json", "fit_h5", "figures", "summary", "warnings")}})
    if primary == GAIA:
        entry["note"] = ("fitted to the members' Gaia photometry: the night's own "
                         "photometry was not available (see the crossmatch stage)")
    if len(ok) == 2:
        entry["comparison"] = _compare(ok[JOHNSON], ok[GAIA])
        raise_alarms(session, _comparison_alarms(cluster, entry["comparison"]))
    return entry


def _label(system: str, fit_json: str | None) -> str:
    """The bands a fit really used, from its ``fit.json`` (``data.observables``)."""
    import json

    from tgpcore.fitting.plan import fit_label

    try:
        observables = json.loads(Path(fit_json).read_text())["data"]["observables"]
    except (OSError, TypeError, KeyError, ValueError):
        observables = None
    return fit_label(system, observables)


def _compare(johnson: dict[str, Any], gaia: dict[str, Any]) -> dict[str, Any]:
    """The Johnson and Gaia fits compared parameter by parameter."""
    import json

    from tgpcore.fitting.compare import compare_fits

    a = json.loads(Path(johnson["fit_json"]).read_text())
    b = json.loads(Path(gaia["fit_json"]).read_text())
    return compare_fits(a, b, labels=(johnson["label"], gaia["label"]))


def _comparison_alarms(cluster: str, comparison: dict[str, Any]) -> list[Any]:
    """An alarm for each parameter on which our fit and Gaia's disagree."""
    from tgpcore.qc import Alarm

    out = []
    for name, c in comparison.get("parameters", {}).items():
        if c.get("alarm"):
            out.append(Alarm(
                "fit_disagreement", "isochrone_fit", f"{cluster} {name}", float(c["ratio"]),
                float(comparison.get("threshold", 2.0)),
                f"{name}: {comparison['labels'][0]} give {c['a']:.3f} ± {c['err_a']:.3f}, Gaia gives "
                f"{c['b']:.3f} ± {c['err_b']:.3f} ({c['ratio']:.1f} combined sigma apart)"))
    return out


@flow(name="tgp-isochrone-fit", log_prints=True)
def isochrone_fit_flow(params: IsochroneFitParams) -> dict[str, Any]:
    """Fit one cluster catalogue (standalone, or recorded with ``record``)."""
    out_dir = Path(params.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if params.record:
        session = open_session(Path(params.catalog).parent, params.out_root, None,
                               params.model_dump(mode="json"))
        with closing_failed_run(session):
            out = run_isochrone_fit_stage(session, params.catalog, params.members, out_dir,
                                          params)
        session.db.finish_run(session.run_id, "succeeded")
        out["run_id"] = session.run_id
        return out
    out = isochrone_fit_task.submit(
        params.catalog, str(out_dir), params.members, params.system, params.prior_specs(),
        params.parallax(), params.isochrones, params.cache_dir, params.options(),
        params.plots, params.extras()).result()
    _artifacts(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: ``tgp fit`` (:mod:`flows.commands.fit`)."""
    from flows.commands.fit import main as fit_main

    return fit_main(argv)


if __name__ == "__main__":
    sys.exit(main())
