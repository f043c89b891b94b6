"""``tgp fit``: age, distance, reddening and [M/H] of a cluster, run by the library directly.

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

Nothing but the products is written; ``--record`` runs the isochrone-fit flow instead, which
also records the run in the run database of ``--out-root``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from flows.settings import default_out_root

NAMES = {"log_age": "log age (dex)", "dm": "(m-M)0 (mag)", "ebv": "E(B-V) (mag)",
         "mh": "[M/H] (dex)"}


def _parse_fix(items: list[str]) -> dict[str, float]:
    from tgpcore.fitting.priors import canonical_name

    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--fix {item!r}: expected name=value, e.g. mh=0.0")
        k, v = item.split("=", 1)
        out[canonical_name(k)] = float(v)
    return out


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``tgp fit``."""
    ap = argparse.ArgumentParser(prog="tgp fit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", required=True, help="photometric table (CSV, ECSV, FITS, VOT)")
    ap.add_argument("--members", help="membership table (members.ecsv of tgp members)")
    ap.add_argument("--system", choices=["auto", "johnson", "gaia"], default="auto")
    ap.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                    help="fix a parameter (log_age, mh, dm, ebv, f_bin); repeatable")
    ap.add_argument("--prior", action="append", default=[], metavar="SPEC",
                    help="prior: NAME=MU+-SIGMA (Gaussian) or NAME=LO:HI (bounds); repeatable")
    ap.add_argument("--parallax", metavar="PLX+-ERR",
                    help="cluster parallax in mas for a distance-modulus prior, e.g. 1.15+-0.02")
    ap.add_argument("--isochrones", help="CMD 3.x file or folder, or an HDF5 library "
                                         "(default: the packaged PARSEC grid)")
    ap.add_argument("--cache-dir", help="isochrone HDF5 cache folder")
    ap.add_argument("--p-min", type=float, default=0.02,
                    help="leave out stars with membership below this (default %(default)s)")
    ap.add_argument("--mag-max", type=float,
                    help="leave out stars fainter than this in V (or G without V)")
    ap.add_argument("--no-parallax-prior", action="store_true",
                    help="no distance-modulus prior from the members' parallaxes")
    ap.add_argument("--zero-point", action="append", default=[], metavar="BAND=SIGMA",
                    help="zero-point 1-sigma of a band in mag (default: the catalogue's "
                         "calibration; Gaia 0.01); repeatable")
    ap.add_argument("--match-radius", type=float, default=1.0,
                    help="radius (arcsec) of the positional join of --members (default 1)")
    ap.add_argument("--no-systematics", action="store_true",
                    help="skip the systematic error budget")
    ap.add_argument("--walkers", type=int, default=16)
    ap.add_argument("--steps", type=int, default=180,
                    help="least chain length, burn-in included (default %(default)s)")
    ap.add_argument("--max-steps", type=int, default=1200,
                    help="cap of the chain, which otherwise runs to 50 autocorrelation times "
                         "(default %(default)s)")
    ap.add_argument("--burn", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--record", action="store_true",
                    help="also record the run in the run database of --out-root")
    ap.add_argument("--out-root", default=default_out_root(), help="run-database root")
    return ap


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The fit's settings from the command line (the fields of the flow's parameters)."""
    fix = _parse_fix(args.fix)
    plx = None
    if args.parallax:
        a, b = args.parallax.replace("±", "+-").split("+-")
        plx = (float(a), float(b))
    zps = {}
    for item in args.zero_point:
        if "=" not in item:
            raise ValueError(f"--zero-point {item!r}: expected BAND=SIGMA, e.g. V=0.02")
        b, v = item.split("=", 1)
        zps[b.strip()] = float(v)
    return dict(catalog=args.catalog, members=args.members, out=args.out, system=args.system,
                fix=fix, priors=args.prior, parallax_mas=plx[0] if plx else None,
                parallax_error_mas=plx[1] if plx else None, isochrones=args.isochrones,
                cache_dir=args.cache_dir, p_min=args.p_min, mag_max=args.mag_max,
                n_walkers=args.walkers, n_steps=args.steps, n_burn=args.burn,
                max_steps=args.max_steps, seed=args.seed, plots=not args.no_plots,
                record=args.record, out_root=args.out_root,
                parallax_prior="off" if args.no_parallax_prior else "auto",
                systematics=not args.no_systematics, zero_points=zps,
                match_radius_arcsec=args.match_radius)


def run_direct(s: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`tgpcore.fitting.run.run_isochrone_fit` with the settings ``s``."""
    from tgpcore.fitting.run import run_isochrone_fit

    priors = [f"{k}={v}" for k, v in s["fix"].items()] + list(s["priors"])
    parallax = ((s["parallax_mas"], s["parallax_error_mas"])
                if s["parallax_mas"] is not None and s["parallax_error_mas"] is not None
                else None)
    options = {"n_walkers": s["n_walkers"], "n_steps": s["n_steps"], "n_burn": s["n_burn"],
               "max_steps": s["max_steps"], "restarts": 2, "seed": s["seed"],
               "p_min": s["p_min"], "mag_max": s["mag_max"], "systematics": s["systematics"]}
    return run_isochrone_fit(s["catalog"], s["out"], s["members"], s["system"], priors,
                             parallax, s["isochrones"], s["cache_dir"], options, s["plots"],
                             log=print, parallax_prior=s["parallax_prior"],
                             zero_points=s["zero_points"] or None,
                             match_radius_arcsec=s["match_radius_arcsec"])


def _run_flow(s: dict[str, Any]) -> dict[str, Any]:
    from flows.ephemeral import bind_temporary_server

    bind_temporary_server()
    from flows.isochrone_fit import IsochroneFitParams, isochrone_fit_flow
    from flows.runners import make_task_runner

    params = IsochroneFitParams(**s)
    return isochrone_fit_flow.with_options(task_runner=make_task_runner(params.runner))(params)


def print_result(out: dict[str, Any]) -> None:
    """The parameters with their statistical, systematic and total errors, and warnings."""
    r = out["result"]
    print(f"  {'':<16} {'value':>9}  {'stat':>7} {'sys':>7} {'total':>7}")
    for k, label in NAMES.items():
        p = r[k]
        print(f"  {label:<16} {p['p50']:9.4f}  {p.get('err_stat', 0):7.4f} "
              f"{p.get('err_sys', 0):7.4f} {p.get('err_total', 0):7.4f}"
              f"{'  (fixed)' if p['fixed'] else ''}")
    plx = r.get("parallax_prior", {})
    print("  parallax prior: " + (f"{plx['parallax_mas']:.4f} ± {plx['error_mas']:.4f} mas"
                                  if plx.get("used") else f"not used ({plx.get('reason')})"))
    for w in out.get("warnings", []):
        print(f"  WARNING: {w}")
    print(f"products: {out['fit_json']}, {out['fit_h5']}")


def main(argv: list[str] | None = None) -> int:
    """Command line: fit one cluster catalogue (exit 0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        s = settings_from_args(args)
        out = _run_flow(s) if args.record else run_direct(s)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"tgp fit: error: {exc}", file=sys.stderr)
        return 2
    print_result(out)
    print(f"time: {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
