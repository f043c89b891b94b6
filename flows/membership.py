"""Flow: cluster membership of a Gaia-like table (``tgp members`` / ``python -m flows.membership``).

    tgp members --catalog ../shared/data/gaia_m67/NGC2682_M67-result.csv --out m67/
    tgp members --gaia --ra 132.846 --dec 11.814 --radius 0.5 --out m67/   # archive, cached

writes ``m67/members.ecsv`` (source_id and membership probability of every input star),
``m67/membership.json`` (centroid pmra, pmdec and parallax with errors, member counts, King
radii with errors, and the methods) and four figures.

Standalone use needs no run database: products go to ``--out`` and nothing else is written
(except the Gaia answer cache, ``<out>/gaia-cache`` by default, when ``--gaia`` is used). Add
``--record`` to record the run in the run database of ``--out-root`` as well. The full run
calls :func:`run_membership_stage` inside its own session.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field

from flows.runner import Deferred, Item, Mapped, StageRunner, stage_run
from flows.runners import RunnerSettings
from flows.session import RunSession, closing_failed_run, open_session
from flows.settings import default_out_root
from tasks.catalogs import gaia_cone_task
from tasks.membership import membership_task
from tgpcore.catalogs.cache import DirectoryCache
from tgpcore.io.checksum import sha256_file

MEMBERSHIP_PARAMS_VERSION = 1


class MembershipParams(BaseModel):
    """Parameters of the membership flow (a typed form in the Prefect UI)."""

    catalog: str | None = Field(None, description="Gaia-like table: CSV, VOTable, ECSV or FITS "
                                                  "(offline); or leave empty and set gaia")
    gaia: bool = Field(False, description="Query the Gaia archive (cached) for the cone")
    release: str = Field("dr3", description="Gaia release for --gaia: dr3 or dr2")
    ra: float | None = Field(None, description="Cone centre RA (deg); default: table centre")
    dec: float | None = Field(None, description="Cone centre Dec (deg)")
    radius: float | None = Field(None, gt=0, description="Cone radius (deg); default: whole table")
    out: str = Field(..., description="Output folder for members.ecsv, membership.json, figures")
    cache_dir: str | None = Field(None, description="Gaia answer cache (default <out>/gaia-cache)")
    cache_mode: str = Field("prefer", description="prefer | refresh | offline | off")
    ruwe_max: float | None = Field(1.4, description="Quality cut: RUWE below this")
    parallax_over_error_min: float | None = Field(1.0, description="Quality cut on parallax S/N")
    g_max: float | None = Field(None, description="Quality cut: G at most this")
    n_boot: int = Field(100, ge=2, description="Bootstrap resamples of the centroid")
    n_boot_king: int = Field(50, ge=0, description="Bootstrap resamples of the King fit")
    use_position: bool = Field(True, description="Use sky position in the mixture")
    plots: bool = Field(True, description="Write the figures")
    record: bool = Field(False, description="Also record the run in the run database")
    out_root: str = Field(default_factory=default_out_root,
                          description="Run-database root used with record")
    runner: RunnerSettings = Field(default_factory=lambda: RunnerSettings(kind="threads"))

    def options(self) -> dict[str, Any]:
        """Options of :func:`tasks.membership.membership_config`."""
        return {"cuts": {"ruwe_max": self.ruwe_max,
                         "parallax_over_error_min": self.parallax_over_error_min,
                         "g_max": self.g_max},
                "n_boot": self.n_boot, "n_boot_king": self.n_boot_king,
                "use_position": self.use_position}

    def centre(self) -> tuple[float, float] | None:
        """The cone centre if given."""
        return (self.ra, self.dec) if self.ra is not None and self.dec is not None else None


def membership_markdown(out: dict[str, Any]) -> str:
    """Markdown summary of a membership result for the Prefect UI."""
    s = out["summary"]
    lines = [f"# Membership: {s['status']}", "", s["message"], ""]
    c, k, n = s.get("centroid"), s.get("king"), s["counts"]
    if c:
        lines += ["| quantity | value | error |", "|---|---|---|"]
        lines += [f"| {q} | {c[q]:.4f} | {c[q.replace('_mas', '_err_mas')]:.4f} |"
                  for q in ("pmra_masyr", "pmdec_masyr", "parallax_mas")]
        lines += ["", f"- members: {n['n_members_p50']} at p > 0.5, {n['n_members_p90']} at "
                      f"p > 0.9 (of {n['n_quality']} stars passing the cuts)",
                  f"- method: {c['method']}"]
    if k:
        lines += [f"- King: rc = {k['rc_arcmin']:.2f} ± {k['rc_err_arcmin']:.2f}′, rt = "
                  f"{k['rt_arcmin']:.1f} ± {k['rt_err_arcmin']:.1f}′"
                  + (" (beyond the cone)" if k["rt_beyond_cone"] else "")
                  + f", r50 = {k['r50_members_arcmin']:.2f} ± {k['r50_members_err_arcmin']:.2f}′"]
    lines += ["", f"- products: `{out['members']}`, `{out['summary_path']}`"]
    lines += [f"- figure: `{p}`" for p in out.get("figures", {}).values()]
    return "\n".join(lines)


def _artifacts(out: dict[str, Any]) -> None:
    create_markdown_artifact(membership_markdown(out), key="membership-summary",
                             description="Cluster membership")
    c = out["summary"].get("centroid")
    if c:
        create_table_artifact(
            [{"quantity": q, "value": round(c[q], 5),
              "error": round(c[q.replace("_mas", "_err_mas")], 5)}
             for q in ("pmra_masyr", "pmdec_masyr", "parallax_mas")],
            key="membership-centroid", description=c["method"])


def _resolve_catalog(params: MembershipParams, out_dir: Path) -> str:
    if params.catalog:
        return params.catalog
    if not params.gaia or params.ra is None or params.dec is None or params.radius is None:
        raise ValueError("give --catalog FILE, or --gaia with --ra, --dec and --radius")
    cache_dir = params.cache_dir or str(out_dir / "gaia-cache")
    res = gaia_cone_task(params.ra, params.dec, params.radius,
                         str(out_dir / f"gaia_{params.release}_cone.ecsv"),
                         release=params.release, cache=DirectoryCache(cache_dir),
                         cache_mode=params.cache_mode)
    return res["path"]


def run_membership_stage(session: RunSession, catalog: str | Path,
                         centre: tuple[float, float] | None, out_dir: str | Path,
                         radius_deg: float | None = None,
                         params: MembershipParams | None = None) -> dict[str, Any]:
    """The membership stage inside an open run (what ``flows/full_run.py`` calls).

    Parameters
    ----------
    session : RunSession
        The run.
    catalog : str or Path
        A Gaia-like table file (the catalogue stage's product, or an offline file).
    centre : (float, float) or None
        Cone centre (deg); the table's centre if None.
    out_dir : str or Path
        Where products go (e.g. ``session.run_dir / "catalogs"``).
    radius_deg : float, optional
        Cone radius (deg).
    params : MembershipParams, optional
        Settings (defaults otherwise).

    Returns
    -------
    dict
        ``status``, ``message``, ``members`` and ``summary_path`` (paths), ``figures``,
        ``summary`` (the membership.json content), ``product_key``.
    """
    params = params or MembershipParams(out=str(out_dir))
    with stage_run(session, "membership", "clusters") as counts:
        done = StageRunner(session, counts).run(
            [membership_item(catalog, centre, out_dir, radius_deg, params)])
        out = membership_outcome(next(iter(done.values())))
        counts.message = out["message"]
    return out


def membership_item(catalog: str | Path, centre: tuple[float, float] | None,
                    out_dir: str | Path, radius_deg: float | None, params: MembershipParams,
                    item_id: str = "members") -> Item:
    """The runner's item of one cluster's membership (keyed by its catalogue and cone)."""
    options = params.options()
    inputs = {"catalog": sha256_file(catalog), "centre": list(centre) if centre else None,
              "radius_deg": radius_deg}
    return Item(item_id, "members", inputs, {**options, "version": MEMBERSHIP_PARAMS_VERSION},
                submit=lambda: Mapped(membership_task.submit(
                    str(catalog), str(out_dir), centre, radius_deg, options, params.plots),
                    _as_product))


def _as_product(out: dict[str, Any]) -> dict[str, Any]:
    """A membership answer as the runner's product: ``path`` the members file, the science's
    status ('ok', 'no_cluster') kept apart from the product's, and the QC figures."""
    s = out["summary"]
    qc = {"members_p50": s["counts"]["n_members_p50"],
          "members_p90": s["counts"]["n_members_p90"]}
    if s.get("centroid"):
        qc.update({k: s["centroid"][k] for k in
                   ("pmra_masyr", "pmdec_masyr", "parallax_mas", "pmra_err_masyr",
                    "pmdec_err_masyr", "parallax_err_mas")})
    if s.get("king"):
        qc.update({"king_rc_arcmin": s["king"]["rc_arcmin"],
                   "king_rc_err_arcmin": s["king"]["rc_err_arcmin"]})
    return {**out, "path": out["members"], "membership_status": out["status"], "status": "ok",
            "qc": qc}


def membership_outcome(done: Any) -> dict[str, Any]:
    """One cluster's membership answer, reused or new (raises when it failed)."""
    if not done.ok:
        raise RuntimeError(done.reason)
    out = {**done.result, "status": done.result["membership_status"],
           "product_key": done.key}
    get_run_logger().info("membership: %s", out["message"])
    _artifacts(out)
    return out


def run_published_membership_stage(session: RunSession, spec: str, clusters: list[str]
                                   ) -> dict[str, dict[str, Any]]:
    """The membership stage from a published member list (``--members``), inside a run.

    ``spec`` is a file or ``vizier:...`` (:func:`tgpcore.catalogs.members.member_list`;
    VizieR answers are retried and cached in the run database). Each cluster's list becomes
    ``membership/<cluster>/members.ecsv`` and ``membership.json``, as the mixture's would.
    A cluster whose list cannot be had is reported failed; the others go on.
    """
    with stage_run(session, "membership", "clusters") as counts:
        listed = sha256_file(spec) if Path(spec).is_file() else None
        items = [Item(cluster, "members", {"spec": spec, "list": listed, "cluster": cluster},
                      {"published": True, "version": MEMBERSHIP_PARAMS_VERSION},
                      submit=partial(Deferred, partial(_published, session, spec, cluster)))
                 for cluster in clusters]
        out = {}
        for cluster, d in StageRunner(session, counts).run(items).items():
            if d.ok:
                out[cluster] = {**d.result, "status": d.result["membership_status"]}
                get_run_logger().info("membership of %s: %s", cluster, d.result["message"])
            else:
                get_run_logger().error("membership of %s from %s failed: %s", cluster, spec,
                                       d.reason)
                out[cluster] = {"status": "failed", "message": d.reason, "members": None,
                                "summary_path": None, "figures": {}}
        counts.extra["source"] = spec
    return out


def _published(session: RunSession, spec: str, cluster: str) -> dict[str, Any]:
    """A cluster's published member list as the membership stage's products."""
    from tgpcore.catalogs.members import member_list
    from tgpcore.membership.published import published_membership
    from tgpcore.settings import offline

    table = member_list(spec, cluster, cache=session.db,
                        cache_mode="offline" if offline() else "prefer")
    res = published_membership(table, session.run_dir / "membership" / cluster)
    return {**res, "path": res["members"], "membership_status": res["status"], "status": "ok"}


def membership_step(night: Any) -> dict[str, dict[str, Any]]:
    """Membership in a walk of the stage table: the published list when one was given, else
    the mixture on each cluster's Gaia table (one runner item per cluster)."""
    session, catalogs = night.session, night.get("catalogs")
    members = getattr(night.params, "members", None)
    if members:
        found = run_published_membership_stage(session, members, sorted(catalogs))
    else:
        with stage_run(session, "membership", "clusters") as counts:
            items = [membership_item(
                cat["path"], (cat["footprint"]["ra_deg"], cat["footprint"]["dec_deg"]),
                session.run_dir / "membership" / cluster, cat["footprint"]["radius_deg"],
                MembershipParams(out=str(session.run_dir / "membership" / cluster)), cluster)
                for cluster, cat in catalogs.items()]
            found = {}
            for cluster, d in StageRunner(session, counts).run(items).items():
                found[cluster] = (membership_outcome(d) if d.ok else
                                  {"status": "failed", "message": d.reason})
    return {cluster: {k: out.get(k) for k in ("status", "message", "members", "summary_path",
                                               "figures")}
            for cluster, out in found.items()}


@flow(name="tgp-membership", log_prints=True)
def membership_flow(params: MembershipParams) -> dict[str, Any]:
    """Cluster membership of one Gaia-like table (standalone, or recorded with ``record``)."""
    out_dir = Path(params.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    catalog = _resolve_catalog(params, out_dir)
    if params.record:
        session = open_session(Path(catalog).parent, params.out_root, None,
                               params.model_dump(mode="json"))
        with closing_failed_run(session):
            out = run_membership_stage(session, catalog, params.centre(), out_dir, params.radius,
                                       params)
        session.db.finish_run(session.run_id, "succeeded")
        out["run_id"] = session.run_id
        return out
    out = membership_task.submit(catalog, str(out_dir), params.centre(), params.radius,
                                 params.options(), params.plots).result()
    _artifacts(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: ``tgp members`` (:mod:`flows.commands.members`)."""
    from flows.commands.members import main as members_main

    return members_main(argv)


if __name__ == "__main__":
    sys.exit(main())
