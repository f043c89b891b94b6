"""Stage: the night's calibrated catalogue matched to Gaia, with membership probabilities.

For each cluster: our calibrated U, B, V (the photcal stage's product), the Gaia table (the
catalogue stage's cone, a local file, or a published member list) and the membership table
(the membership stage's ``members.ecsv`` or the published list) become
``catalogs/<cluster>_matched.{ecsv,fits}`` and ``matched/<cluster>`` in ``tgp.h5``: the table
the cluster's parameters are fitted to.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table
from astropy.time import Time
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.runner import Deferred, Item, StageRunner, stage_run
from flows.session import RunSession
from tgpcore.catalogs.files import read_catalog_file
from tgpcore.catalogs.matched import match_catalogue
from tgpcore.inventory import Inventory
from tgpcore.io.checksum import sha256_file
from tgpcore.photcal.products import export_catalogue

CROSSMATCH_PARAMS_VERSION = 1


def observation_epoch(inv: Inventory, cluster: str) -> float:
    """Julian year of the middle of a cluster's science frames (2016.0 if none has a date)."""
    mjds = [r.mjd for r in inv.accepted("science") if (r.cluster or "?") == cluster and r.mjd]
    if not mjds:
        return 2016.0
    return float(Time(float(np.median(mjds)), format="mjd").jyear)


def run_crossmatch_stage(session: RunSession, inv: Inventory, catalogues: dict[str, Any],
                         gaia: dict[str, Any], membership: dict[str, Any]
                         ) -> dict[str, dict[str, Any]]:
    """Match each cluster's calibrated catalogue to its Gaia table.

    Parameters
    ----------
    session : RunSession
    inv : Inventory
        For the epoch of the observations.
    catalogues : dict
        The photcal stage's ``catalogues`` (cluster -> ``ecsv`` ...).
    gaia : dict
        The catalogue stage's result (cluster -> ``path``).
    membership : dict
        The membership stage's result (cluster -> ``members`` path, ``status``).

    Returns
    -------
    dict
        Per cluster: ``status`` ('ok', 'failed' or 'skipped'), ``ecsv``, ``fits``, ``hdf5``,
        ``hdf5_key``, ``summary`` (counts) or ``message``.
    """
    out: dict[str, dict[str, Any]] = {}
    with stage_run(session, "crossmatch", "clusters") as counts:
        items = []
        for cluster, cat in sorted(catalogues.items()):
            if cluster not in gaia:
                out[cluster] = {"status": "skipped", "message": "no Gaia table for this cluster"}
                continue
            mem = membership.get(cluster) or {}
            members = mem["members"] if mem.get("status") == "ok" and mem.get("members") else None
            epoch = observation_epoch(inv, cluster)
            inputs = {"calibrated": sha256_file(cat["ecsv"]),
                      "gaia": sha256_file(gaia[cluster]["path"]),
                      "members": sha256_file(members) if members else None}
            items.append(Item(cluster, "matched_catalog", inputs,
                              {"version": CROSSMATCH_PARAMS_VERSION, "epoch_yr": round(epoch, 3)},
                              submit=partial(Deferred, partial(
                                  _match, session, cluster, cat["ecsv"], gaia[cluster]["path"],
                                  members, epoch))))
        for cluster, d in StageRunner(session, counts).run(items).items():
            out[cluster] = d.result if d.ok else {"status": "failed", "message": d.reason}
            if not d.ok:
                get_run_logger().error("cross-match of %s failed: %s", cluster, d.reason)
        create_markdown_artifact(
            "# Cross-match with Gaia\n\n" + "\n".join(
                f"- {c}: " + (f"{v['summary']['n_matched']}/{v['summary']['n_stars']} matched, "
                              f"{v['summary']['n_members_p50']} members at p > 0.5 -> "
                              f"`{v['ecsv']}`" if v["status"] == "ok" else v["message"])
                for c, v in out.items()), key="crossmatch-summary")
    return out


def _match(session: RunSession, cluster: str, calibrated: str, gaia: str, members: str | None,
           epoch: float) -> dict[str, Any]:
    """Match one cluster's calibrated catalogue to its Gaia table and export it."""
    cal = Table.read(calibrated, format="ascii.ecsv")
    ref = read_catalog_file(gaia)
    matched, summary = match_catalogue(cal, ref, epoch,
                                       Table.read(members) if members else None)
    paths = export_catalogue(matched, session.run_dir / "catalogs", f"{cluster}_matched",
                             h5_path=str(session.run_dir / "tgp.h5"), h5_key=f"matched/{cluster}",
                             attrs={"crossmatch": summary})
    get_run_logger().info(
        "%s: %d of %d stars matched to Gaia (%d ambiguous), %d with a membership probability "
        "(%s), %d members at p > 0.5", cluster, summary["n_matched"], summary["n_stars"],
        summary["n_ambiguous"], summary["n_with_membership"], summary["membership"],
        summary["n_members_p50"])
    return {"status": "ok", **paths, "path": paths["ecsv"], "checksum": sha256_file(paths["ecsv"]),
            "summary": summary, "qc": {k: float(v) for k, v in summary.items()
                                       if isinstance(v, int | float)}}


def matched_path(result: dict[str, Any], cluster: str) -> str | None:
    """The matched catalogue of a cluster in a full run's result, if any."""
    v = (result.get("crossmatch") or {}).get(cluster) or {}
    return v.get("ecsv") if v.get("status") == "ok" and Path(v.get("ecsv", "")).is_file() \
        else None


def crossmatch_step(night: Any) -> dict[str, dict[str, Any]]:
    """The crossmatch in a walk of the stage table, or its record as skipped when there is no
    calibrated catalogue (a run started after photcal, or a photcal that failed)."""
    photcal = night.result.get("photcal") or {}
    cats = {c: v for c, v in (photcal.get("catalogues") or {}).items() if v.get("ecsv")}
    if not cats:
        message = ("no calibrated catalogue of the night's own photometry (photcal did not run "
                   "in this run, or failed): the cluster is fitted to Gaia photometry only")
        db = night.session.db
        db.stage_finished(db.stage_started(night.session.run_id, "crossmatch"), "skipped",
                          message=message)
        get_run_logger().warning("crossmatch skipped: %s", message)
        return {}
    return run_crossmatch_stage(night.session, night.get("inventory"), cats,
                                night.get("catalogs"), night.get("membership") or {})
