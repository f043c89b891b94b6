"""Published member lists of open clusters: any table of Gaia stars with a probability.

A user who has no Gaia cone (offline, or a cluster too far for a clean mixture) can take the
members of a published catalogue instead: Cantat-Gaudin et al. (2020), Hunt & Reffert (2023),
Dias et al. (2021), or any file with Gaia identifiers or positions and a membership
probability. :func:`read_member_list` reads a file, :func:`vizier_member_list` fetches a
published list by catalogue (retried and cached, :mod:`tgpcore.catalogs.vizier`), and
:func:`member_list` takes either spelling. The result has the Gaia archive's column names
(``source_id``, ``ra``, ``dec``, ``parallax``, ``pmra``, ...) and ``p_member``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table

from tgpcore.catalogs.columns import standardise_gaia_table
from tgpcore.catalogs.files import catalog_format

#: Probability column spellings, compared case-insensitively, in order of preference.
PROBABILITY_COLUMNS: tuple[str, ...] = (
    "p_member", "pmemb", "p_memb", "proba", "prob", "probability", "pmem", "p_mem",
    "membership_probability", "membership", "prob_member", "member_prob", "p")
#: Cluster-name column spellings of multi-cluster member tables.
CLUSTER_COLUMNS: tuple[str, ...] = ("cluster", "name", "cluster_name", "cl", "oc")


@dataclass(frozen=True)
class PublishedList:
    """A published member catalogue on VizieR: its member table and the column naming the
    cluster."""

    catalog: str
    cluster_column: str
    reference: str


#: Published member lists known by a short name (``--members vizier:cantat-gaudin2020``).
PUBLISHED: dict[str, PublishedList] = {
    "cantat-gaudin2020": PublishedList("J/A+A/640/A1/nodup", "Cluster",
                                       "Cantat-Gaudin et al. 2020, A&A 640, A1 (Gaia DR2)"),
    "hunt-reffert2023": PublishedList("J/A+A/673/A114/members", "Name",
                                      "Hunt & Reffert 2023, A&A 673, A114 (Gaia DR3)"),
    "dias2021": PublishedList("J/MNRAS/504/356/table12", "Cluster",
                              "Dias et al. 2021, MNRAS 504, 356 (Gaia DR2)"),
}


def _find(colnames: list[str], names: tuple[str, ...]) -> str | None:
    lower = {c.lower(): c for c in colnames}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def cluster_name_variants(name: str) -> set[str]:
    """Spellings of a cluster name to compare with a table's: ``NGC 2420``, ``NGC_2420``,
    ``NGC2420`` (case-insensitive)."""
    base = " ".join(name.replace("_", " ").split()).lower()
    return {base, base.replace(" ", "_"), base.replace(" ", "")}


def standardise_member_list(table: Table, source: str, cluster: str | None = None,
                            p_column: str | None = None) -> Table:
    """Archive column names plus ``p_member``; only ``cluster``'s rows of a multi-cluster list.

    Parameters
    ----------
    table : astropy.table.Table
        The list as read.
    source : str
        Where it came from (for messages and ``meta``).
    cluster : str, optional
        Keep the rows of this cluster when the table has a cluster-name column.
    p_column : str, optional
        The probability column (default: the first of :data:`PROBABILITY_COLUMNS`; without
        any, every listed star has probability 1, and ``meta`` says so).

    Raises
    ------
    ValueError
        If the table has neither Gaia identifiers nor positions, if ``p_column`` is absent,
        or if no row belongs to ``cluster``. Messages name ``source``.
    """
    t = Table(table, masked=table.masked, copy=True)
    notes = []
    ccol = _find(t.colnames, CLUSTER_COLUMNS)
    if cluster and ccol is not None:
        names = np.array([str(v).strip().lower() for v in t[ccol]])
        keep = np.isin(names, list(cluster_name_variants(cluster)))
        if not keep.any():
            found = sorted({str(v) for v in t[ccol]})[:5]
            raise ValueError(f"{source}: no member of {cluster!r} (the list's {ccol!r} column "
                             f"has e.g. {found})")
        t = t[keep]
        notes.append(f"{int(keep.sum())} rows of {cluster} (column {ccol!r})")
    pcol = p_column if p_column else _find(t.colnames, PROBABILITY_COLUMNS)
    if p_column and p_column not in t.colnames:
        raise ValueError(f"{source}: no probability column {p_column!r}; columns are "
                         f"{t.colnames}")
    prob = (np.ma.filled(np.ma.asarray(t[pcol], float), np.nan) if pcol is not None
            else np.ones(len(t)))
    out = standardise_gaia_table(t, source=source)
    if "source_id" not in out.colnames and not {"ra", "dec"} <= set(out.colnames):
        raise ValueError(f"{source}: a member list needs Gaia source ids or positions (ra, "
                         f"dec); columns are {t.colnames}")
    if prob.size and np.nanmax(prob) > 1.0 + 1e-9:       # percentages
        prob = prob / 100.0
        notes.append(f"probabilities in {pcol!r} read as percentages")
    out["p_member"] = np.clip(np.where(np.isfinite(prob), prob, 0.0), 0.0, 1.0)
    out["p_member"].description = (f"membership probability from {pcol!r} of {source}"
                                   if pcol else f"listed in {source} (no probability column:"
                                                " 1)")
    if pcol is None:
        notes.append("no probability column: every listed star counts as a member")
    out.meta.update({"member_list": source, "probability_column": pcol, "notes": notes,
                     "cluster": cluster})
    return out


def read_member_list(path: str | Path, cluster: str | None = None,
                     p_column: str | None = None) -> Table:
    """A member list from a file (CSV, ECSV, VOTable, FITS); see
    :func:`standardise_member_list`.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it cannot be read or lacks what a member list needs (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"member list not found: {path}")
    try:
        table = Table.read(path, format=catalog_format(path))
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds; name the file
        raise ValueError(f"{path}: cannot read the member list: {exc}") from exc
    return standardise_member_list(table, str(path), cluster, p_column)


def vizier_member_list(spec: str, cluster: str, p_column: str | None = None, **query_kw
                       ) -> Table:
    """A published member list from VizieR, for one cluster (retried and cached).

    Parameters
    ----------
    spec : str
        A short name of :data:`PUBLISHED` (``cantat-gaudin2020``, ``hunt-reffert2023``,
        ``dias2021``), or ``CATALOG[#COLUMN]``: a VizieR table and the column naming the
        cluster (``Cluster`` by default).
    cluster : str
        The cluster's name (any of ``NGC 2420``, ``NGC_2420``, ``NGC2420``).
    **query_kw
        Passed to :func:`tgpcore.catalogs.vizier.query_vizier` (cache, cache_mode, policy,
        service).
    """
    from tgpcore.catalogs.vizier import query_vizier

    pub = PUBLISHED.get(spec.lower())
    if pub is not None:
        catalog, column, ref = pub.catalog, pub.cluster_column, pub.reference
    else:
        catalog, _, column = spec.partition("#")
        column, ref = column or "Cluster", f"VizieR {catalog}"
    last = None
    for name in ("_".join(cluster.split()), cluster, cluster.replace(" ", "")):
        table = query_vizier(catalog, constraints={column: f"={name}"}, **query_kw)
        if len(table):
            out = standardise_member_list(table, ref, None, p_column)
            out.meta.update({"vizier_catalog": catalog, "cluster": cluster,
                             "tgp_origin": table.meta.get("tgp_origin")})
            return out
        last = name
    raise ValueError(f"{ref}: no member of {cluster!r} (asked {column} = {last!r})")


def member_list(spec: str, cluster: str | None = None, p_column: str | None = None,
                **query_kw) -> Table:
    """A member list from ``spec``: a file path, or ``vizier:NAME_OR_CATALOG`` (see
    :func:`vizier_member_list`; needs ``cluster``)."""
    if spec.lower().startswith("vizier:"):
        if not cluster:
            raise ValueError(f"--members {spec}: a VizieR member list needs the cluster's name")
        return vizier_member_list(spec.split(":", 1)[1], cluster, p_column, **query_kw)
    return read_member_list(spec, cluster, p_column)


def members_by_cluster(spec: str, clusters: list[str], p_column: str | None = None,
                       **query_kw) -> Mapping[str, Table]:
    """:func:`member_list` for each cluster of a night (a file without a cluster column is
    every cluster's list)."""
    return {c: member_list(spec, c, p_column, **query_kw) for c in clusters}
