"""Membership from a published list: the same products as the mixture's (``members.ecsv``,
``membership.json``), from a list a user gives (:mod:`tgpcore.catalogs.members`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from tgpcore.io.atomic import atomic_path
from tgpcore.io.checksum import sha256_file
from tgpcore.io.tables import write_table


def _weighted(values: np.ndarray, errors: np.ndarray | None, w: np.ndarray
              ) -> tuple[float, float]:
    """Mean of ``values`` weighted by ``w`` (and their inverse variances when given), and
    its error: the formal one or the scatter over sqrt(n), whichever is larger."""
    ok = np.isfinite(values) & (w > 0)
    if errors is not None:
        ok &= np.isfinite(errors) & (errors > 0)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    v, ww = values[ok], w[ok]
    if errors is not None:
        ww = ww / errors[ok] ** 2
    mean = float(np.sum(ww * v) / np.sum(ww))
    formal = float(1.0 / np.sqrt(np.sum(ww))) if errors is not None else 0.0
    scatter = float(np.std(v) / np.sqrt(ok.sum()))
    return mean, max(formal, scatter if errors is None else 0.0)


def published_membership(members: Table, out_dir: str | Path) -> dict[str, Any]:
    """Write a published member list as the membership stage's products.

    Parameters
    ----------
    members : astropy.table.Table
        From :func:`tgpcore.catalogs.members.member_list` (archive names and ``p_member``).
    out_dir : str or Path
        Where ``members.ecsv`` and ``membership.json`` go.

    Returns
    -------
    dict
        As the membership stage's: ``status``, ``message``, ``members``, ``summary_path``,
        ``figures`` (none), ``summary``, ``checksum``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    p = np.asarray(members["p_member"], float)
    src = members.meta.get("member_list", "a member list")

    def col(name: str) -> np.ndarray | None:
        return (np.asarray(np.ma.filled(np.ma.asarray(members[name], float), np.nan))
                if name in members.colnames else None)

    centroid: dict[str, Any] = {"method": f"weighted mean over the published members ({src})"}
    for q, c, e in (("pmra_masyr", "pmra", "pmra_error"), ("pmdec_masyr", "pmdec", "pmdec_error"),
                    ("parallax_mas", "parallax", "parallax_error")):
        v = col(c)
        if v is None:
            continue
        mean, err = _weighted(v, col(e), p)
        centroid[q] = mean
        centroid[q.replace("_mas", "_err_mas")] = err
    counts = {"n_input": len(members), "n_quality": len(members),
              "n_members_p50": int((p > 0.5).sum()), "n_members_p90": int((p > 0.9).sum())}
    message = (f"published member list: {counts['n_members_p50']} members at p > 0.5 "
               f"({src})")
    summary = {"status": "ok", "message": message, "counts": counts,
               "centroid": centroid if len(centroid) > 1 else None, "king": None,
               "method": f"published list: {src}", "notes": members.meta.get("notes", [])}
    path = write_table(members, out_dir / "members.ecsv")
    summary_path = out_dir / "membership.json"
    with atomic_path(summary_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=str))
    return {"status": "ok", "message": message, "members": str(path),
            "summary_path": str(summary_path), "figures": {}, "summary": summary,
            "checksum": sha256_file(path)}
