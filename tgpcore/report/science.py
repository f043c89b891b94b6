"""The report's first screen: the cluster's parameters and the diagrams that give them.

For each fitted cluster: the parameters from the night's own photometry with their
statistical, systematic and total errors; Gaia's check beside them and how far apart the two
are; the simulator's truth on a simulated night; literature values when they can be had (the
run database's cache of VizieR answers, or the service itself when online); the derived age,
distance and extinction; the fit's warnings; the colour-magnitude and two-colour diagrams, the
Gaia diagram, and the members on the field. Then the night's photometric quality: zero
points, extinction and colour terms, sky brightness and limiting magnitude per band.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tgpcore.report.files import read_json as _read_json
from tgpcore.report.files import read_png as _png
from tgpcore.report.model import Figure, Section, Table

PARAMS = (("log_age", "log age", "dex"), ("dm", "(m−M)₀", "mag"), ("ebv", "E(B−V)", "mag"),
          ("mh", "[M/H]", "dex"))
#: Names of real clusters worth looking up in the literature (not a simulated one).
CATALOGUE_NAME = re.compile(r"^(NGC|IC|M|Messier|Collinder|Cr|Melotte|Mel|King|Berkeley|Be|"
                            r"Trumpler|Tr|Stock|Ruprecht|Czernik|Haffner|Pismis|Alessi|"
                            r"Blanco|Platais|Roslund|Dolidze|UBC|Gulliver|Teutsch|ASCC)"
                            r"[\s_-]*\d+", re.IGNORECASE)


def fitted_clusters(run_dir: Path) -> dict[str, dict[str, Path | None]]:
    """Each fitted cluster's fit folders: ``own`` (the night's photometry, or the only fit)
    and ``gaia`` (the Gaia check)."""
    out: dict[str, dict[str, Path | None]] = {}
    for fj in sorted((run_dir / "fit").glob("*/fit.json")):
        name = fj.parent.name
        if name.endswith("_gaia"):
            out.setdefault(name[:-5], {"own": None, "gaia": None})["gaia"] = fj.parent
        else:
            out.setdefault(name, {"own": None, "gaia": None})["own"] = fj.parent
    return {k: v for k, v in out.items() if v["own"] is not None}


def simulated_truth(data_dir: str | None) -> dict[str, Any] | None:
    """The simulator's truth of a simulated night (``<night>/truth/truth.json`` beside its
    ``raw`` folder), or None for a real night."""
    if not data_dir:
        return None
    for root in (Path(data_dir).parent, Path(data_dir)):
        t = _read_json(root / "truth" / "truth.json")
        if t and "cluster" in t:
            return t
    return None


def _err(p: dict[str, Any], key: str) -> float | None:
    v = p.get(key)
    return float(v) if isinstance(v, int | float) else None


def parameter_table(own: dict[str, Any], gaia: dict[str, Any] | None,
                    truth: dict[str, Any] | None,
                    literature: list[dict[str, Any]]) -> Table:
    """One row per parameter: ours (value, stat, sys, total), Gaia's check and the
    agreement, the truth, the literature."""
    photometry = "/".join(own.get("data", {}).get("observables", [])) or "?"
    cols = ["parameter", f"ours ({photometry})", "± stat", "± sys", "± total"]
    if gaia is not None:
        cols += ["Gaia check", "± total ", "apart (σ)"]
    if truth is not None:
        cols += ["truth (simulated)"]
    cols += [f"{row['source']}" for row in literature]
    want = {}
    if truth is not None:
        c = truth["cluster"]
        want = {"log_age": c.get("log_age"), "dm": c.get("distance_modulus"),
                "ebv": c.get("ebv"), "mh": c.get("mh")}
    rows = []
    for key, label, unit in PARAMS:
        p = own.get(key) or {}
        total = _err(p, "err_total") or (0.5 * (p["p84"] - p["p16"]) if "p84" in p else None)
        row: list[Any] = [f"{label} [{unit}]", p.get("p50"), _err(p, "err_stat"),
                          _err(p, "err_sys"), total]
        if gaia is not None:
            g = gaia.get(key) or {}
            gt = _err(g, "err_total") or (0.5 * (g["p84"] - g["p16"]) if "p84" in g else None)
            apart = None
            if g.get("p50") is not None and p.get("p50") is not None and total and gt:
                apart = abs(g["p50"] - p["p50"]) / float(np.hypot(total, gt))
            row += [g.get("p50"), gt, apart]
        if truth is not None:
            row.append(want.get(key))
        row += [lit.get(key) for lit in literature]
        rows.append(row)
    return Table(title="The cluster (posterior median; errors: statistical, systematic "
                       "budget, total)", columns=cols, rows=rows)


def derived_table(own: dict[str, Any]) -> Table | None:
    """Age, distance and A_V with their intervals."""
    d = own.get("derived") or {}
    rows = []
    for key, label in (("age_myr", "age [Myr]"), ("distance_pc", "distance [pc]"),
                       ("av", "A_V [mag]")):
        v = d.get(key)
        if isinstance(v, dict) and "p50" in v:
            rows.append([label, v["p50"], v["p50"] - v["p16"], v["p84"] - v["p50"]])
    if not rows:
        return None
    return Table(title="Derived (statistical interval)", columns=["quantity", "median",
                                                                  "−err", "+err"], rows=rows)


def field_figure(mosaic: Path, matched: Path, title: str) -> bytes | None:
    """The field (a mosaic) with the cluster's members circled (p > 0.5 in the matched
    catalogue), as PNG bytes; None when either is missing or has no WCS."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from astropy.io import fits
        from astropy.table import Table as ATable
        from astropy.visualization import ZScaleInterval
        from astropy.wcs import WCS

        with fits.open(mosaic) as hdul:
            data = np.asarray(hdul[0].data, float)
            w = WCS(hdul[0].header).celestial
        if not w.has_celestial:
            return None
        cat = ATable.read(matched)
    except Exception:  # noqa: BLE001 - no figure rather than no report
        return None
    p = np.asarray(np.ma.filled(np.ma.asarray(cat["p_member"], float), np.nan))
    mem = np.isfinite(p) & (p > 0.5)
    x, y = w.world_to_pixel_values(np.asarray(cat["ra"], float), np.asarray(cat["dec"], float))
    step = max(1, int(max(data.shape) // 1200))
    img = data[::step, ::step]
    finite = np.isfinite(img)
    lo, hi = ZScaleInterval().get_limits(img[finite]) if finite.any() else (0.0, 1.0)
    fig, ax = plt.subplots(figsize=(8.0, 8.0 * img.shape[0] / max(img.shape[1], 1) + 0.6))
    ax.imshow(np.where(finite, img, lo), origin="lower", cmap="gray_r", vmin=lo, vmax=hi)
    ax.scatter(x[mem] / step, y[mem] / step, s=40, facecolors="none", edgecolors="tab:red",
               linewidths=0.8, label=f"members (p > 0.5): {int(mem.sum())}")
    ax.scatter(x[~mem & np.isfinite(p)] / step, y[~mem & np.isfinite(p)] / step, s=12,
               facecolors="none", edgecolors="tab:blue", linewidths=0.5, alpha=0.6,
               label="Gaia-matched field stars")
    ax.set_xlim(0, img.shape[1])
    ax.set_ylim(0, img.shape[0])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
    ax.set_title(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _mosaic_for(run_dir: Path, cluster: str) -> Path | None:
    for band in ("V", "B", "U", "R", "I"):
        for cls in ("long", "short"):
            p = run_dir / "mosaics" / f"{cluster}_{band}_{cls}.fits"
            if p.is_file():
                return p
    return None


def cluster_section(run_dir: Path, cluster: str, folders: dict[str, Path | None],
                    truth: dict[str, Any] | None,
                    literature: list[dict[str, Any]]) -> Section:
    """The first-screen section of one cluster."""
    own_dir, gaia_dir = folders["own"], folders["gaia"]
    own = _read_json(own_dir / "fit.json") or {}
    gaia = _read_json(gaia_dir / "fit.json") if gaia_dir is not None else None
    sec = Section(key=f"science:{cluster}", title=f"{cluster}: the cluster's parameters",
                  stage="isochrone_fit", stage_status="succeeded" if own else "failed")
    obs = own.get("data", {}).get("observables", [])
    ours = any(o in obs for o in ("V", "B", "U", "B-V"))
    sec.notes.append(
        ("Fitted to the night's own photometry (" + ", ".join(obs) + ")" if ours else
         "Fitted to the members' Gaia photometry (" + ", ".join(obs) + "): the night's own "
         "photometry was not available")
        + (f" of {own['data'].get('n_stars')} stars" if own.get("data") else "")
        + ("; Gaia's photometry of the same members fitted beside it as an independent check."
           if gaia else "."))
    for w in own.get("warnings") or []:
        sec.notes.append(f"Warning: {w}")
    plx = own.get("parallax_prior") or {}
    if plx.get("used"):
        sec.notes.append(f"Distance prior from the members' parallaxes: {plx['parallax_mas']:.4f}"
                         f" ± {plx['error_mas']:.4f} mas ({plx.get('zero_point_method', '')}).")
    sec.tables.append(parameter_table(own, gaia, truth, literature))
    if gaia is not None:
        bad = [k for k, label, _ in PARAMS
               if (own.get(k) or {}).get("p50") is not None and (gaia.get(k) or {}).get("p50")
               is not None and abs(gaia[k]["p50"] - own[k]["p50"]) > 2.0 * float(np.hypot(
                   _err(own[k], "err_total") or 0.0, _err(gaia[k], "err_total") or 0.0))]
        if bad:
            sec.notes.append("ALARM: our photometry and Gaia's disagree on "
                             + ", ".join(bad) + " by more than twice their combined error.")
    for lit in literature:
        if lit.get("note"):
            sec.notes.append(f"{lit['source']}: {lit['note']}")
    derived = derived_table(own)
    if derived is not None:
        sec.tables.append(derived)
    for name, title in (("cmd", "colour-magnitude diagram (our photometry)"),
                        ("colour_colour", "two-colour diagram with the reddening vector")):
        png = _png(own_dir / f"{name}.png")
        if png:
            sec.figures.append(Figure(title=title, png=png,
                                      caption=str((own_dir / f"{name}.png").relative_to(run_dir))))
    if gaia_dir is not None:
        png = _png(gaia_dir / "cmd.png")
        if png:
            sec.figures.append(Figure(title="Gaia's colour-magnitude diagram (the check)",
                                      png=png, caption=str((gaia_dir / "cmd.png")
                                                           .relative_to(run_dir))))
    mosaic = _mosaic_for(run_dir, cluster)
    matched = run_dir / "catalogs" / f"{cluster}_matched.ecsv"
    if mosaic is not None and matched.is_file():
        png = field_figure(mosaic, matched, f"{cluster}: members on the field "
                                            f"({mosaic.name})")
        if png:
            sec.figures.append(Figure(title="members on the field", png=png,
                                      caption=str(mosaic.relative_to(run_dir))))
    return sec


def limiting_magnitudes(catalogue: Path, snr: float = 5.0) -> dict[str, float]:
    """Per band, the magnitude where the calibrated errors reach 1.0857/``snr`` mag: the
    median error in ten magnitude bins, interpolated where it crosses that, or the trend of
    the photon-limited bins (median error above 0.02 mag) extrapolated to it."""
    try:
        from astropy.table import Table as ATable

        cat = ATable.read(catalogue)
    except Exception:  # noqa: BLE001
        return {}
    out = {}
    for b in cat.meta.get("bands", []) or []:
        if b not in cat.colnames or f"{b}_err" not in cat.colnames:
            continue
        m = np.asarray(np.ma.filled(np.ma.asarray(cat[b], float), np.nan))
        e = np.asarray(np.ma.filled(np.ma.asarray(cat[f"{b}_err"], float), np.nan))
        ok = np.isfinite(m) & np.isfinite(e) & (e > 0) & (e < 0.5)
        if ok.sum() < 20:
            continue
        mm, ee = m[ok], e[ok]
        target = 1.0857 / snr
        # median error in magnitude bins; the limit is where it crosses the target, or the
        # photon-limited trend (bins with errors above 0.02 mag) carried to it
        edges = np.quantile(mm, np.linspace(0.0, 1.0, 11))
        centres, med = [], []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            sel = (mm >= lo) & (mm <= hi)
            if sel.sum() >= 5:
                centres.append(float(np.median(mm[sel])))
                med.append(float(np.median(ee[sel])))
        centres_a, med_a = np.array(centres), np.array(med)
        above = np.flatnonzero(med_a >= target)
        if len(above) and above[0] > 0:
            k = above[0]
            x0, x1 = centres_a[k - 1], centres_a[k]
            y0, y1 = np.log10(med_a[k - 1]), np.log10(med_a[k])
            out[b] = float(x0 + (np.log10(target) - y0) * (x1 - x0) / (y1 - y0))
            continue
        use = med_a > 0.02
        if use.sum() < 2:
            continue
        slope, icpt = np.polyfit(centres_a[use], np.log10(med_a[use]), 1)
        if slope > 0:
            out[b] = float((np.log10(target) - icpt) / slope)
    return out


def night_quality_table(solutions: list[dict[str, Any]], sky: dict[str, float],
                        limits: dict[str, float]) -> Table | None:
    """Per band: zero point, extinction, colour term (with errors), sky brightness and
    5-sigma limiting magnitude."""
    bands = sorted({s.get("filter") for s in solutions if s.get("filter")}
                   | set(limits) | {k.split("/")[-2] for k in sky if k.count("/") >= 2},
                   key=lambda b: "UBVRI".find(b) if b in "UBVRI" else 9)
    if not bands:
        return None
    rows = []
    for b in bands:
        s = next((x for x in solutions if x.get("filter") == b), {})
        skies = [v for k, v in sky.items() if k.count("/") >= 2 and k.split("/")[-2] == b]
        rows.append([b, s.get("zp"), s.get("zp_err"), s.get("k"), s.get("k_err"),
                     s.get("c"), s.get("c_err"), s.get("colour"), s.get("method"),
                     float(np.median(skies)) if skies else None, limits.get(b)])
    return Table(title="The night: photometric solution (m_std − m_inst = ZP − k·X + c·colour), "
                       "sky and depth",
                 columns=["band", "ZP", "± ", "k [mag/airmass]", "±", "c", "± ", "colour",
                          "method", "sky [mag/arcsec²]", "5σ limit [mag]"], rows=rows)


def literature_for(cluster: str, lookup: Callable[[str], list[dict[str, Any]]] | None
                   ) -> list[dict[str, Any]]:
    """Literature rows for a real cluster's name (none for a simulated one)."""
    if lookup is None or not CATALOGUE_NAME.match(cluster.replace("SIM-", "XX-")):
        return []
    try:
        return lookup(cluster)
    except Exception:  # noqa: BLE001 - the literature is a courtesy, never a failure
        return []
