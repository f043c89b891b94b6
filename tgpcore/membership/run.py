"""One Gaia-like table in, the membership products out: ``members.ecsv``, ``membership.json``
and the figures. What ``tgp members`` and the full run's membership stage do, as a plain
function (usable from a notebook)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tgpcore.catalogs.columns import MEMBERSHIP_REQUIRED
from tgpcore.catalogs.files import read_catalog_file
from tgpcore.io.checksum import sha256_file
from tgpcore.membership.finder import MembershipConfig, find_members
from tgpcore.membership.products import write_membership_products
from tgpcore.membership.quality import QualityCuts


def membership_config(options: dict[str, Any] | None) -> MembershipConfig:
    """A :class:`MembershipConfig` from plain options (``cuts`` as a dict)."""
    opts = dict(options or {})
    cuts = QualityCuts(**opts.pop("cuts", {}))
    return MembershipConfig(cuts=cuts, **opts)


def run_membership(catalog_path: str | Path, out_dir: str | Path,
                   centre: tuple[float, float] | None = None, radius_deg: float | None = None,
                   options: dict[str, Any] | None = None, plots: bool = True,
                   figure_children: Any = None) -> dict[str, Any]:
    """Read a Gaia-like file, find the members, write ``members.ecsv``, ``membership.json``
    and the figures into ``out_dir``; return their paths and the summary.

    ``figure_children`` (a command line's choice: :func:`tgpcore.plots.child.membership_figure_children`) draw the
    figures while the tables are written.

    Returns
    -------
    dict
        ``status``, ``message``, ``members``, ``summary_path``, ``checksum`` (of members.ecsv),
        ``figures`` (name -> path), ``summary`` (membership.json content), ``timings_s``
        (read, members, write, figures).
    """
    import time

    t0 = time.perf_counter()
    child = figure_children if plots else None   # its owner cancels it on an error
    table = read_catalog_file(catalog_path, MEMBERSHIP_REQUIRED)
    t1 = time.perf_counter()
    result = find_members(table, centre=centre, radius_deg=radius_deg,
                          config=membership_config(options), source=str(catalog_path))
    t2 = time.perf_counter()
    if child is not None:
        child.draw(result)
    paths = write_membership_products(result, out_dir, source=str(catalog_path))
    t3 = time.perf_counter()
    figures: dict[str, Path] = {}
    if child is not None:
        from tgpcore.plots.membership import membership_figure_paths

        child.wait()
        figures = membership_figure_paths(result, out_dir)
    elif plots:
        from tgpcore.plots.membership import membership_figures

        figures = membership_figures(result, out_dir)
    t4 = time.perf_counter()
    return {"status": result.status, "message": result.message,
            "members": str(paths["members"]), "summary_path": str(paths["summary"]),
            "checksum": sha256_file(paths["members"]),
            "figures": {k: str(v) for k, v in figures.items()}, "summary": result.summary(),
            "timings_s": {"read": round(t1 - t0, 3), "members": round(t2 - t1, 3),
                          "write": round(t3 - t2, 3), "figures": round(t4 - t3, 3)}}
