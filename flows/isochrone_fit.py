"""Flow: fit age, distance, reddening and [M/H] of a cluster (``tgp fit`` /
``python -m flows.isochrone_fit``).

    tgp fit --catalog cluster.ecsv --out fit/                       # U, B, V (+ errors)
    tgp fit --catalog gaia.csv --members m67/members.ecsv --system gaia --out fit/
    tgp fit --catalog night_calibrated.ecsv --members NGC_2420_members_edr3.csv --out fit/

writes ``fit/fit.json`` (log_age, dm, ebv, mh with p16/p50/p84 and statistical, systematic
and total errors, the systematic budget, ``warnings``, whether a parallax prior was used,
covariance, method), ``fit/fit.h5`` (posterior samples, best isochrone, per-star
probabilities) and the figures ``cmd.png``, ``colour_colour.png`` (with U) and ``corner.png``.

A member list is joined by Gaia id, or by position (1" one-to-one) when the catalogue has no
common id. When the members' parallaxes are known (member list or catalogue), the distance
modulus gets a parallax prior (zero point and angular-covariance floor included;
``--no-parallax-prior`` to switch it off).

Standalone use needs no run database; ``--record`` also records the run in the run database of
``--out-root``. The full run calls :func:`run_isochrone_fit_stage` inside its own session.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from flows.runners import RunnerSettings
from flows.session import RunSession, closing_failed_run, open_session, recorded_stage
from flows.settings import default_out_root
from tasks.isochrone_fit import isochrone_fit_task
from tgpcore import __version__
from tgpcore.io.checksum import product_key

ISOCHRONE_FIT_PARAMS_VERSION = 1
_NAMES = {"log_age": "log age (dex)", "dm": "(m-M)0 (mag)", "ebv": "E(B-V) (mag)",
          "mh": "[M/H] (dex)"}


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
    logger = get_run_logger()
    params = params or IsochroneFitParams(catalog=str(catalog), out=str(out_dir),
                                          members=str(members) if members else None)
    with recorded_stage(session, "isochrone_fit") as counters:
        out = isochrone_fit_task.submit(
            str(catalog), str(out_dir), str(members) if members else None, params.system,
            params.prior_specs(), params.parallax(), params.isochrones, params.cache_dir,
            params.options(), params.plots, params.extras()).result()
        params_rec = {**params.options(), **params.extras(), "system": params.system,
                      "priors": params.prior_specs(), "parallax": params.parallax(),
                      "version": ISOCHRONE_FIT_PARAMS_VERSION}
        pkey = product_key("isochrone_fit", out["inputs"], params_rec, __version__)
        pid = session.db.record_product(session.run_id, "isochrone_fit", pkey, out["fit_h5"],
                                        out["checksum"], out["inputs"], params_rec,
                                        __version__)
        session.db.add_qc(session.run_id, out["summary"], product_id=pid)
        s = out["summary"]
        counters.update({"n_stars": int(s["n_stars"]), "log_age": s["log_age"],
                         "dm": s["dm"], "ebv": s["ebv"], "mh": s["mh"]})
        counters["_message"] = (f"log age {s['log_age']:.3f}±{s['log_age_err']:.3f}, (m-M)0 "
                                f"{s['dm']:.3f}±{s['dm_err']:.3f}, E(B-V) {s['ebv']:.3f}±"
                                f"{s['ebv_err']:.3f}, [M/H] {s['mh']:+.3f}±{s['mh_err']:.3f}"
                                " (total errors)"
                                + (f"; {len(out['warnings'])} warning(s): "
                                   + "; ".join(out["warnings"]) if out["warnings"] else ""))
        logger.info("isochrone fit: %s", counters["_message"])
        for w in out["warnings"]:
            logger.warning("isochrone fit: %s", w)
        _artifacts(out)
    out["product_key"] = pkey
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
