"""Figures of an isochrone fit: colour-magnitude diagrams with the best isochrone and a band of
posterior isochrones, the U-B vs B-V diagram with the reddened isochrone and the reddening
vector, and a corner plot of the posterior."""

from __future__ import annotations

from pathlib import Path

import corner
import numpy as np

from tgpcore.fitting.data import ClusterPhotometry
from tgpcore.fitting.result import FitResult
from tgpcore.isochrones.extinction import extinction_ratios
from tgpcore.isochrones.interpolate import IsochroneInterpolator
from tgpcore.isochrones.reddening import ExtinctionModel
from tgpcore.plots.style import new_figure, save_figure

#: Labels of the parameters.
LABELS = {"log_age": r"$\log_{10}$ age", "mh": "[M/H]", "dm": r"$(m-M)_0$",
          "ebv": "E(B-V)", "f_bin": r"$f_{\rm bin}$", "s_int": r"$\sigma_{\rm int}$"}
#: CMDs drawn when their bands are there: (magnitude, (colour band 1, colour band 2), labels).
CMDS = (("V", ("B", "V"), "V", "B - V"), ("G", ("G_BP", "G_RP"), "G", "BP - RP"))
_OBS_OF_BAND = {"G_BP": "BP", "G_RP": "RP"}


def _full(result: FitResult, row: np.ndarray | None = None) -> dict[str, float]:
    """Parameter values: the best fit, or one posterior sample ``row``."""
    vals = {k: p.best for k, p in result.parameters.items()}
    if row is not None:
        vals.update(dict(zip(result.free, row, strict=True)))
    return vals


def _apparent(interp: IsochroneInterpolator, vals: dict[str, float], bands: tuple[str, ...],
              ratios: dict[str, float], max_label: int = 7, extinction: bool = True,
              model: ExtinctionModel | None = None) -> dict[str, np.ndarray]:
    """Apparent magnitudes of the isochrone at ``vals``: extinction per point from ``model``
    (colour-dependent, as fitted) where it covers the band, else the constant ``ratios``."""
    eep = interp.eep_arrays(vals["log_age"], vals["mh"])
    keep = eep["label"] <= max_label
    ebv = vals["ebv"] if extinction else 0.0
    coeff = {}
    if model is not None and ebv > 0:
        c = model.coefficients(eep, ebv)
        if c.ndim == 2:
            coeff = {b: c[:, k] for k, b in enumerate(model.bands)}
    return {b: eep[b][keep] + vals["dm"] + (coeff[b][keep] if b in coeff else ratios[b]) * ebv
            for b in bands}


def _star_colour(data: ClusterPhotometry, b1: str, b2: str):
    return data.colour(_OBS_OF_BAND.get(b1, b1), _OBS_OF_BAND.get(b2, b2))


def cmd_figure(data: ClusterPhotometry, result: FitResult, interp: IsochroneInterpolator,
               path: str | Path, n_draws: int = 40, seed: int = 0,
               truths: dict[str, float] | None = None) -> Path | None:
    """Colour-magnitude diagram(s): the fitted stars coloured by membership probability (those
    the fit counts as outliers ringed), stars outside the trusted range in grey, the best
    isochrone, the equal-mass binary sequence (0.75 mag brighter), a band of isochrones drawn
    from the posterior and the trusted range's faint limit.

    Parameters
    ----------
    data : ClusterPhotometry
        The fitted stars.
    result : FitResult
        The fit.
    interp : IsochroneInterpolator
        Isochrones with the bands of the diagrams.
    path : str or Path
        PNG to write.
    n_draws : int
        Posterior isochrones drawn.
    seed : int
        Chooses the posterior draws.
    truths : dict, optional
        True parameters (simulations): that isochrone is drawn dashed.

    Returns
    -------
    Path or None
        The file, or None when no diagram can be drawn.
    """
    shown = result.input_data if result.input_data is not None else data
    panels = []
    for mag, (b1, b2), ylabel, xlabel in CMDS:
        m = data.magnitude(_OBS_OF_BAND.get(mag, mag))
        c = _star_colour(data, b1, b2)
        if m is not None and c is not None and all(b in interp.bands for b in (mag, b1, b2)):
            panels.append((mag, b1, b2, ylabel, xlabel, m, c,
                           shown.magnitude(_OBS_OF_BAND.get(mag, mag)),
                           _star_colour(shown, b1, b2)))
    if not panels:
        return None
    ratios = extinction_ratios(list({b for p in panels for b in p[:3]}))
    model = result.extinction_model
    fig, axes = new_figure(1, len(panels), size=(5.2 * len(panels), 6.0), squeeze=False)
    rng = np.random.default_rng(seed)
    draws = result.samples[rng.choice(len(result.samples), min(n_draws, len(result.samples)),
                                      replace=False)] if len(result.samples) else []
    p_cl = result.star_probabilities.get("p_cluster", data.p_member)
    best = _full(result)
    a_lim = (result.data_summary.get("trusted_range") or {}).get("anchor_max")
    for ax, (mag, b1, b2, ylabel, xlabel, (mv, _me), (cv, _ce), m_all, c_all) in zip(
            axes[0], panels, strict=True):
        bands = (mag, b1, b2)
        if m_all is not None and c_all is not None and shown is not data:
            out_range = m_all[0] > a_lim if a_lim is not None else np.zeros(len(m_all[0]), bool)
            ax.scatter(c_all[0][out_range], m_all[0][out_range], s=4, color="0.75", lw=0,
                       label="not fitted (beyond the trusted range)")
        for row in draws:
            iso = _apparent(interp, _full(result, row), bands, ratios, model=model)
            ax.plot(iso[b1] - iso[b2], iso[mag], color="tab:orange", lw=0.5, alpha=0.15)
        sc = ax.scatter(cv, mv, c=data.p_member, s=7, cmap="viridis", vmin=0, vmax=1, lw=0)
        outl = (p_cl < 0.2) & (data.p_member >= 0.5)
        ax.scatter(cv[outl], mv[outl], s=22, facecolors="none", edgecolors="tab:red", lw=0.6,
                   label="treated as outliers")
        iso = _apparent(interp, best, bands, ratios, model=model)
        ax.plot(iso[b1] - iso[b2], iso[mag], color="tab:red", lw=1.4, label="best fit")
        ms = interp.eep_arrays(best["log_age"], best["mh"])["label"] <= 1
        ax.plot((iso[b1] - iso[b2])[ms[: len(iso[mag])]], iso[mag][ms[: len(iso[mag])]] - 0.753,
                color="tab:red", lw=0.8, ls=":", label="equal-mass binaries")
        if truths:
            tr = _apparent(interp, {**best, **truths}, bands, ratios, model=model)
            ax.plot(tr[b1] - tr[b2], tr[mag], color="k", lw=0.8, ls="--", label="truth")
        if a_lim is not None and mag == data.anchor:
            ax.axhline(a_lim, color="0.4", lw=0.8, ls="--", label="trusted faint limit")
        allm = m_all[0] if m_all is not None else mv
        allc = c_all[0] if c_all is not None else cv
        lo, hi = np.nanpercentile(allm, [0, 100])
        ax.set_ylim(hi + 0.5, lo - 1.0)
        clo, chi = np.nanpercentile(allc, [0.5, 99.5])
        ax.set_xlim(clo - 0.3, chi + 0.3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="lower left", fontsize=7)
        fig.colorbar(sc, ax=ax, label="membership probability", shrink=0.8)
    pars = result.parameters
    fig.suptitle("  ".join(
        f"{LABELS[k]}={pars[k].p50:.3f}" + rf"$\pm${pars[k].total:.3f}"
        for k in ("log_age", "mh", "dm", "ebv")) + "  (total errors)"
        + (f"\n{len(result.warnings)} warning(s) in fit.json: "
           + result.warnings[0][:90] + ("..." if len(result.warnings[0]) > 90 else "")
           if result.warnings else ""), fontsize=9)
    return save_figure(fig, path)


def colour_colour_figure(data: ClusterPhotometry, result: FitResult,
                         interp: IsochroneInterpolator, path: str | Path) -> Path | None:
    """U-B vs B-V: stars, the reddened best isochrone, the same isochrone unreddened, and the
    reddening vector of the fitted E(B-V) (slope E(U-B)/E(B-V) of the extinction law).

    Returns
    -------
    Path or None
        The file, or None without U, B and V.
    """
    ub, bv = data.colour("U", "B"), data.colour("B", "V")
    if ub is None or bv is None or not all(b in interp.bands for b in ("U", "B", "V")):
        return None
    ratios = extinction_ratios(["U", "B", "V"])
    best = _full(result)
    fig, axes = new_figure(1, 1, size=(6.0, 6.0))
    ax = axes
    p_cl = result.star_probabilities.get("p_cluster", data.p_member)
    ok = np.isfinite(ub[0]) & np.isfinite(bv[0])
    sc = ax.scatter(bv[0][ok], ub[0][ok], c=p_cl[ok], s=6, cmap="viridis", vmin=0, vmax=1, lw=0)
    iso = _apparent(interp, best, ("U", "B", "V"), ratios, model=result.extinction_model)
    iso0 = _apparent(interp, best, ("U", "B", "V"), ratios, extinction=False)
    ax.plot(iso["B"] - iso["V"], iso["U"] - iso["B"], color="tab:red", lw=1.4,
            label=f"reddened, E(B-V)={best['ebv']:.3f}")
    ax.plot(iso0["B"] - iso0["V"], iso0["U"] - iso0["B"], color="tab:gray", lw=1.0, ls="--",
            label="unreddened")
    slope = ratios["U"] - ratios["B"]
    x0, y0 = float(np.nanpercentile(bv[0][ok], 10)), float(np.nanpercentile(ub[0][ok], 5)) - 0.3
    e = max(best["ebv"], 0.1)
    ax.annotate("", xy=(x0 + e, y0 + slope * e), xytext=(x0, y0),
                arrowprops={"arrowstyle": "->", "color": "k", "lw": 1.5})
    ax.text(x0, y0 - 0.05, f"reddening vector E(U-B)/E(B-V) = {slope:.2f} (hot star)",
            fontsize=8)
    lo, hi = np.nanpercentile(ub[0][ok], [0.5, 99.5])
    ax.set_ylim(hi + 0.3, lo - 0.5)
    clo, chi = np.nanpercentile(bv[0][ok], [0.5, 99.5])
    ax.set_xlim(clo - 0.3, chi + 0.3)
    ax.set_xlabel("B - V")
    ax.set_ylabel("U - B")
    ax.legend(loc="lower left", fontsize=8)
    fig.colorbar(sc, ax=ax, label="P(follows isochrone)", shrink=0.8)
    return save_figure(fig, path)


def corner_figure(result: FitResult, path: str | Path,
                  truths: dict[str, float] | None = None) -> Path:
    """Corner plot of the posterior samples of the free parameters, with 16/50/84 % lines."""
    k = len(result.free)
    fig, _ = new_figure(k, k, size=(2.0 * k + 1, 2.0 * k + 1))
    corner.corner(result.samples, fig=fig, labels=[LABELS[n] for n in result.free],
                  quantiles=[0.16, 0.5, 0.84], show_titles=True, title_fmt=".3f",
                  truths=[truths.get(n) for n in result.free] if truths else None,
                  title_kwargs={"fontsize": 9})
    return save_figure(fig, path)


def fit_figures(data: ClusterPhotometry, result: FitResult, interp: IsochroneInterpolator,
                out_dir: str | Path, truths: dict[str, float] | None = None
                ) -> dict[str, Path]:
    """All figures of a fit into ``out_dir``: ``cmd.png``, ``colour_colour.png`` (with U) and
    ``corner.png``; returns name -> path of those written."""
    out = Path(out_dir)
    figs: dict[str, Path] = {}
    p = cmd_figure(data, result, interp, out / "cmd.png", truths=truths)
    if p is not None:
        figs["cmd"] = p
    p = colour_colour_figure(data, result, interp, out / "colour_colour.png")
    if p is not None:
        figs["colour_colour"] = p
    figs["corner"] = corner_figure(result, out / "corner.png", truths=truths)
    return figs
