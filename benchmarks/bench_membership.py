"""Benchmark: the membership stage on a 10,000-star simulated Gaia cone, against a baseline.

Ours: :func:`tgpcore.membership.find_members` with its defaults (KDE centroid, error-deconvolved
mixture with the sky term, 100 bootstrap resamples of the centroid, King fit with 50).
Baseline: a plain TGP2020-style KDE member finder on the same input: the KDE centroid, then
"members" = stars whose proper motion is within 2 KDE bandwidths of it and whose parallax is
within 3 sigma, no mixture, no errors on anything.

Both are timed on one core in the same run and checked against the simulator's truth
(precision and recall at G < 18, centroid error). Run:
``.venv/bin/python benchmarks/bench_membership.py``; the last line is JSON.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from astropy.table import vstack  # noqa: E402

from tgpcore.isochrones.grid import load_packaged_grid  # noqa: E402
from tgpcore.membership import find_members  # noqa: E402
from tgpcore.membership.kde import detect_cluster  # noqa: E402
from tgpcore.membership.quality import QualityCuts, quality_mask  # noqa: E402
from tgpcore.membership.sample import build_sample, tangent_offsets_arcmin  # noqa: E402
from tgpcore.simulate.gaia import synthesize_gaia  # noqa: E402
from tgpcore.simulate.population import sample_cluster, sample_field  # noqa: E402
from tgpcore.simulate.region import SkyRegion  # noqa: E402

RA0, DEC0, R = 97.5, 24.5, 20.0
PM = (-0.9, -2.6)
DIST = 1500.0


def make_cone(seed: int = 2024, target: int = 10_000):
    """A ~``target``-star simulated Gaia cone of radius R arcmin and its truth."""
    grid = load_packaged_grid()
    rng = np.random.default_rng(seed)
    half = R / 60.0
    reg = SkyRegion("cone", RA0, DEC0, -half, half, -half, half)
    cl = sample_cluster(grid, rng, name="SIM", ra=RA0, dec=DEC0, log_age=9.0, mh=0.0,
                        distance_pc=DIST, ebv=0.2, core_radius_arcmin=2.0,
                        tidal_radius_arcmin=15.0, n_systems=5000, binary_fraction=0.3,
                        pmra_masyr=PM[0], pmdec_masyr=PM[1], velocity_dispersion_kms=0.8,
                        faint_limit_v=23.0, region=reg)
    fl = sample_field(grid, rng, region=reg, density_arcmin2=13.0, faint_limit_v=23.0,
                      ebv_per_kpc=0.2, ebv_max=0.5, binary_fraction=0.3)
    stars = vstack([cl, fl])
    stars["star_id"] = np.arange(1, len(stars) + 1, dtype=np.int64)
    g = synthesize_gaia(stars, rng)
    xi, eta = tangent_offsets_arcmin(RA0, DEC0, g["ra"], g["dec"])
    g = g[np.hypot(xi, eta) <= R][:target]
    return g, np.isin(g["source_id"], stars["star_id"][stars["is_member"]])


def baseline(gaia):
    """TGP2020-style: KDE centroid, then a box in proper motion and parallax."""
    s = build_sample(gaia, (RA0, DEC0), R / 60.0)
    q, _ = quality_mask(s, QualityCuts())
    det = detect_cluster(s.x[q, :2], s.x[q, 2], np.sqrt(s.cov[q, 2, 2]), s.r[q], R)
    d_pm = np.hypot(s.x[:, 0] - det.pmra_masyr, s.x[:, 1] - det.pmdec_masyr)
    d_plx = np.abs(s.x[:, 2] - det.parallax_mas) / np.sqrt(s.cov[:, 2, 2] + 0.03**2)
    member = (d_pm < 2.0 * det.bandwidth_masyr) & (d_plx < 3.0)
    return (det.pmra_masyr, det.pmdec_masyr, det.parallax_mas), member


def score(member, truth, g):
    bright = g < 18.0
    sel = member & bright
    tp = (sel & truth).sum()
    return tp / max(sel.sum(), 1), tp / max((truth & bright).sum(), 1)


def best_of(fn, repeat: int = 3):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> int:
    gaia, truth = make_cone()
    g = np.asarray(gaia["phot_g_mean_mag"], float)
    t_ours, res = best_of(lambda: find_members(gaia, centre=(RA0, DEC0), radius_deg=R / 60.0))
    t_base, (b_centroid, b_member) = best_of(lambda: baseline(gaia))
    c = res.summary()["centroid"]
    ours_c = (c["pmra_masyr"], c["pmdec_masyr"], c["parallax_mas"])
    p_ours, r_ours = score(np.nan_to_num(np.asarray(res.members["p_member"], float)) > 0.5,
                           truth, g)
    p_base, r_base = score(b_member, truth, g)
    true_c = (PM[0], PM[1], 1000.0 / DIST)
    err_ours = max(abs(a - b) for a, b in zip(ours_c[:2], true_c[:2], strict=True))
    err_base = max(abs(a - b) for a, b in zip(b_centroid[:2], true_c[:2], strict=True))
    agree = max(abs(a - b) for a, b in zip(ours_c[:2], b_centroid[:2], strict=True))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"membership benchmark: {len(gaia)} stars, {int(truth.sum())} true members "
          f"({int((truth & (g < 18)).sum())} at G < 18); best of 3 runs, one core")
    print(f"{'method':<34} {'time s':>8} {'precision':>10} {'recall':>8} {'|dpm| mas/yr':>13}")
    print(f"{'ours (KDE + XD mixture + bootstrap + King)':<34.34} {t_ours:8.2f} "
          f"{p_ours:10.3f} {r_ours:8.3f} {err_ours:13.4f}")
    print(f"{'baseline (TGP2020-style KDE box)':<34} {t_base:8.2f} {p_base:10.3f} "
          f"{r_base:8.3f} {err_base:13.4f}")
    print(f"centroids agree within {agree:.3f} mas/yr; ours carries errors "
          f"({c['pmra_err_masyr']:.4f}, {c['pmdec_err_masyr']:.4f} mas/yr), the baseline none")
    print(json.dumps({"bench": "membership", "n_stars": len(gaia), "ours_s": round(t_ours, 3),
                      "baseline_s": round(t_base, 3),
                      "slowdown_vs_baseline": round(t_ours / t_base, 2),
                      "ours_precision": round(float(p_ours), 4),
                      "ours_recall": round(float(r_ours), 4),
                      "baseline_precision": round(float(p_base), 4),
                      "baseline_recall": round(float(r_base), 4),
                      "ours_centroid_err_masyr": round(err_ours, 4),
                      "baseline_centroid_err_masyr": round(err_base, 4),
                      "centroids_agree_masyr": round(agree, 4), "budget_s": 10.0,
                      "within_budget": bool(t_ours <= 10.0), "peak_rss_mb": round(rss, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
