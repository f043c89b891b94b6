"""``tgp members``: cluster membership of a Gaia-like table, run by the library directly.

    tgp members --catalog ../shared/data/gaia_m67/NGC2682_M67-result.csv --out m67/
    tgp members --gaia --ra 132.846 --dec 11.814 --radius 0.5 --out m67/   # archive, cached

writes ``m67/members.ecsv`` (source_id and membership probability of every input star),
``m67/membership.json`` (centroid pmra, pmdec and parallax with errors, member counts, King
radii with errors, and the methods) and four figures.

Nothing else is written (except the Gaia answer cache, ``<out>/gaia-cache`` by default, with
``--gaia``). ``--record`` runs the membership flow instead, which also records the run in the
run database of ``--out-root``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from flows.settings import default_out_root


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``tgp members``."""
    ap = argparse.ArgumentParser(prog="tgp members", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--catalog", "--gaia-file", dest="catalog",
                     help="Gaia-like table (CSV, VOTable, ECSV, FITS)")
    src.add_argument("--gaia", action="store_true",
                     help="query the Gaia archive for the cone (needs --ra --dec --radius)")
    ap.add_argument("--ra", type=float, help="cone centre RA (deg)")
    ap.add_argument("--dec", type=float, help="cone centre Dec (deg)")
    ap.add_argument("--radius", type=float, help="cone radius (deg)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--release", default="dr3", choices=["dr3", "dr2"])
    ap.add_argument("--cache-dir", help="Gaia answer cache (default <out>/gaia-cache)")
    ap.add_argument("--offline", action="store_true", help="--gaia from the cache only")
    ap.add_argument("--ruwe-max", type=float, default=1.4)
    ap.add_argument("--parallax-over-error-min", type=float, default=1.0)
    ap.add_argument("--g-max", type=float)
    ap.add_argument("--n-boot", type=int, default=100)
    ap.add_argument("--no-position", action="store_true", help="astrometry only in the mixture")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--record", action="store_true",
                    help="also record the run in the run database of --out-root (runs the "
                         "Prefect flow)")
    ap.add_argument("--out-root", default=default_out_root(), help="run-database root")
    return ap


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Options of :func:`tgpcore.membership.run.membership_config` from the command line."""
    return {"cuts": {"ruwe_max": args.ruwe_max,
                     "parallax_over_error_min": args.parallax_over_error_min,
                     "g_max": args.g_max},
            "n_boot": args.n_boot, "n_boot_king": 50, "use_position": not args.no_position}


def gaia_cone_file(args: argparse.Namespace, out_dir: Path) -> str:
    """Query (or take from the cache) the Gaia cone of ``--ra --dec --radius``; its file."""
    from tgpcore.catalogs.cache import DirectoryCache
    from tgpcore.catalogs.credentials import gaia_credentials_from_env
    from tgpcore.catalogs.gaia import GAIA_ARCHIVE_URL, GaiaArchive, query_gaia_cone
    from tgpcore.io.atomic import atomic_path
    from tgpcore.io.tables import write_ecsv
    from tgpcore.settings import gaia_archive_url

    if args.ra is None or args.dec is None or args.radius is None:
        raise ValueError("--gaia needs --ra, --dec and --radius")
    cache = DirectoryCache(args.cache_dir or str(out_dir / "gaia-cache"))
    table = query_gaia_cone(args.ra, args.dec, args.radius, release=args.release, cache=cache,
                            cache_mode="offline" if args.offline else "prefer",
                            archive=GaiaArchive(gaia_archive_url() or GAIA_ARCHIVE_URL,
                                                credentials=gaia_credentials_from_env()))
    path = out_dir / f"gaia_{args.release}_cone.ecsv"
    with atomic_path(path) as tmp:
        write_ecsv(table, tmp)
    print(f"Gaia {args.release.upper()} cone: {len(table)} sources "
          f"({table.meta['tgp_origin']}) -> {path}")
    return str(path)


def print_summary(out: dict[str, Any]) -> None:
    """The result as an astronomer reads it."""
    print(out["message"])
    s = out["summary"]
    if s.get("centroid"):
        c = s["centroid"]
        print(f"  centroid: pmra {c['pmra_masyr']:.3f} ± {c['pmra_err_masyr']:.3f}, pmdec "
              f"{c['pmdec_masyr']:.3f} ± {c['pmdec_err_masyr']:.3f} mas/yr, parallax "
              f"{c['parallax_mas']:.4f} ± {c['parallax_err_mas']:.4f} mas")
    if s.get("king"):
        k = s["king"]
        print(f"  King: rc {k['rc_arcmin']:.2f} ± {k['rc_err_arcmin']:.2f}', rt "
              f"{k['rt_arcmin']:.1f} ± {k['rt_err_arcmin']:.1f}'"
              + (" (beyond the cone)" if k["rt_beyond_cone"] else "")
              + f", r50 {k['r50_members_arcmin']:.2f} ± {k['r50_members_err_arcmin']:.2f}'")
    print(f"products: {out['members']}, {out['summary_path']}")


def _run_flow(args: argparse.Namespace) -> dict[str, Any]:
    from flows.ephemeral import bind_temporary_server

    bind_temporary_server()
    from flows.membership import MembershipParams, membership_flow
    from flows.runners import make_task_runner

    params = MembershipParams(
        catalog=args.catalog, gaia=args.gaia, release=args.release, ra=args.ra, dec=args.dec,
        radius=args.radius, out=args.out, cache_dir=args.cache_dir,
        cache_mode="offline" if args.offline else "prefer", ruwe_max=args.ruwe_max,
        parallax_over_error_min=args.parallax_over_error_min, g_max=args.g_max,
        n_boot=args.n_boot, use_position=not args.no_position, plots=not args.no_plots,
        record=True, out_root=args.out_root)
    return membership_flow.with_options(task_runner=make_task_runner(params.runner))(params)


def main(argv: list[str] | None = None) -> int:
    """Command line: membership of a Gaia-like table (exit 0 ok, 1 failed, 2 bad input)."""
    args = build_parser().parse_args(argv)
    if (args.ra is None) != (args.dec is None):
        print("tgp members: error: give both --ra and --dec, or neither", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        if args.record:
            out = _run_flow(args)
        else:
            out_dir = Path(args.out)
            out_dir.mkdir(parents=True, exist_ok=True)
            from tgpcore.membership.run import run_membership
            from tgpcore.plots.child import membership_figure_children

            # forked once the science stack is imported (the children share it), before the
            # members are found: they import matplotlib while the parent computes
            children = None if args.no_plots else membership_figure_children(out_dir)
            try:
                catalog = args.catalog or gaia_cone_file(args, out_dir)
                centre = (args.ra, args.dec) if args.ra is not None else None
                out = run_membership(catalog, out_dir, centre, args.radius,
                                     options_from_args(args), plots=not args.no_plots,
                                     figure_children=children)
            except BaseException:
                if children is not None:
                    children.cancel()
                raise
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"tgp members: error: {exc}", file=sys.stderr)
        return 2
    print_summary(out)
    t = out.get("timings_s")
    if t:
        print(f"time: {time.perf_counter() - t0:.1f} s (members {t['members']:.1f} s, read "
              f"{t['read']:.1f} s, write {t['write']:.1f} s, figures {t['figures']:.1f} s)")
    return 0 if out["status"] in ("ok", "no_cluster") else 1


if __name__ == "__main__":
    sys.exit(main())
