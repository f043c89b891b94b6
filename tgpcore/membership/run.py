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


def _figures_in_child(result, out_dir):
    """Start a forked process drawing the figures (None where forking is not possible)."""
    import multiprocessing as mp
    import threading

    # forking a process that runs other threads can copy a lock held by one of them into the
    # child (logging, a database pool): only a single-threaded command line forks
    if (mp.current_process().daemon or "fork" not in mp.get_all_start_methods()
            or threading.active_count() > 1):
        return None
    from tgpcore.plots.membership import membership_figures

    proc = mp.get_context("fork").Process(target=membership_figures, args=(result, out_dir))
    proc.start()
    return proc


def run_membership(catalog_path: str | Path, out_dir: str | Path,
                   centre: tuple[float, float] | None = None, radius_deg: float | None = None,
                   options: dict[str, Any] | None = None, plots: bool = True,
                   figures_in_child: bool = False) -> dict[str, Any]:
    """Read a Gaia-like file, find the members, write ``members.ecsv``, ``membership.json``
    and the figures into ``out_dir``; return their paths and the summary.

    With ``figures_in_child`` (a command line's choice: the process must not be a daemon) the
    figures are drawn by a forked child while the tables are written.

    Returns
    -------
    dict
        ``status``, ``message``, ``members``, ``summary_path``, ``checksum`` (of members.ecsv),
        ``figures`` (name -> path), ``summary`` (membership.json content), ``timings_s``
        (read, members, write, figures).
    """
    import time

    t0 = time.perf_counter()
    table = read_catalog_file(catalog_path, MEMBERSHIP_REQUIRED)
    t1 = time.perf_counter()
    result = find_members(table, centre=centre, radius_deg=radius_deg,
                          config=membership_config(options), source=str(catalog_path))
    t2 = time.perf_counter()
    child = _figures_in_child(result, out_dir) if plots and figures_in_child else None
    paths = write_membership_products(result, out_dir, source=str(catalog_path))
    t3 = time.perf_counter()
    figures: dict[str, Path] = {}
    if child is not None:
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"the membership figures of {out_dir} failed "
                               f"(exit code {child.exitcode})")
        from tgpcore.plots.membership import membership_figure_paths

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
