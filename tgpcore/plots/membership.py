"""Figures of the membership stage: proper motions, radial profile, sky map and CMD."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from tgpcore.membership.finder import MembershipResult
from tgpcore.membership.king import disc_fraction_norm, king_density
from tgpcore.plots.style import new_figure, save_figure

P_MEMBER = 0.5


def _arrays(result: MembershipResult):
    m = result.members
    p = np.nan_to_num(np.asarray(m["p_member"], float), nan=0.0)
    return m, p, p > P_MEMBER


def binned_kde(x: np.ndarray, y: np.ndarray, lim: tuple[float, float, float, float],
               n: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A Gaussian KDE of (x, y) on an n x n grid over ``lim``, with Scott's bandwidth per axis:
    the points binned on the grid and the histogram smoothed (what ``scipy.stats.gaussian_kde``
    gives on the grid, to the bin size, in milliseconds instead of seconds for 10^4 stars)."""
    ex = np.linspace(lim[0], lim[1], n + 1)
    ey = np.linspace(lim[2], lim[3], n + 1)
    hist, _, _ = np.histogram2d(x, y, bins=(ex, ey))
    bw = len(x) ** (-1.0 / 6.0)                     # Scott's factor in two dimensions
    sig = (bw * np.std(x) / (ex[1] - ex[0]), bw * np.std(y) / (ey[1] - ey[0]))
    dens = gaussian_filter(hist, sig, mode="constant")
    dens /= max(dens.sum() * (ex[1] - ex[0]) * (ey[1] - ey[0]), 1e-300)
    cx, cy = 0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1])
    gx, gy = np.meshgrid(cx, cy)
    return gx, gy, dens.T


def plot_proper_motions(result: MembershipResult, path: str | Path) -> Path:
    """(pmra, pmdec) of every star, KDE contours of the field + cluster, members highlighted.

    Parameters
    ----------
    result : MembershipResult
        Output of :func:`tgpcore.membership.finder.find_members`.
    path : str or Path
        PNG to write (atomically).
    """
    m, p, mem = _arrays(result)
    x = result.sample.x
    ok = result.sample.has_astrometry
    fig, ax = new_figure(size=(6.0, 5.5))
    if result.model is not None:
        c = result.model.means[0]
        half = max(3.0, 12.0 * float(np.sqrt(result.model.covs[0][0, 0])))
        lim = (c[0] - half, c[0] + half, c[1] - half, c[1] + half)
    else:
        med = np.nanmedian(x[ok, :2], 0)
        lim = (med[0] - 10, med[0] + 10, med[1] - 10, med[1] + 10)
    box = ok & (x[:, 0] > lim[0]) & (x[:, 0] < lim[1]) & (x[:, 1] > lim[2]) & (x[:, 1] < lim[3])
    ax.scatter(x[box & ~mem, 0], x[box & ~mem, 1], s=2, c="0.6", lw=0, label="field")
    sc = ax.scatter(x[box & mem, 0], x[box & mem, 1], s=5, c=p[box & mem], cmap="viridis",
                    vmin=P_MEMBER, vmax=1.0, lw=0, label=f"p > {P_MEMBER}")
    if box.sum() > 10:
        gx, gy, dens = binned_kde(x[box, 0], x[box, 1], lim)
        levels = np.unique(np.quantile(dens, [0.6, 0.8, 0.9, 0.97, 0.995]))
        if len(levels) >= 2:     # a concentrated sample (members only) can tie its quantiles
            ax.contour(gx, gy, dens, levels=levels, colors="k", linewidths=0.7)
    if result.model is not None:
        ax.plot(*result.model.means[0][:2], "r+", ms=14, mew=2, label="centroid")
    fig.colorbar(sc, ax=ax, label="membership probability")
    ax.set_xlim(lim[0], lim[1])
    ax.set_ylim(lim[2], lim[3])
    ax.set_xlabel(r"$\mu_{\alpha*}$ [mas/yr]")
    ax.set_ylabel(r"$\mu_\delta$ [mas/yr]")
    ax.set_title("Proper motions (KDE contours)")
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, path)


def plot_radial_profile(result: MembershipResult, path: str | Path, n_bins: int = 15) -> Path:
    """Surface density of the kinematic members in annuli, with the fitted King profile."""
    s, king = result.sample, result.king
    fig, ax = new_figure()
    pk = np.nan_to_num(np.asarray(result.members["p_kinematic"], float), nan=0.0)
    sel = s.has_astrometry & (pk > result.config.king_p_min)
    if king is not None:
        r = np.hypot(s.xi[sel] - king.xi0_arcmin, s.eta[sel] - king.eta0_arcmin)
        rmax = king.fit_radius_arcmin - np.hypot(king.xi0_arcmin, king.eta0_arcmin)
    else:
        r, rmax = s.r[sel], s.radius_arcmin
    edges = np.geomspace(max(rmax / 60.0, 0.05), rmax, n_bins + 1)
    edges[0] = 0.0
    counts, _ = np.histogram(r, edges)
    area = np.pi * (edges[1:] ** 2 - edges[:-1] ** 2)
    mid = np.sqrt(np.maximum(edges[1:] * edges[:-1], (edges[1] / 2) ** 2))
    good = counts > 0
    dens = counts[good] / area[good]
    err = np.sqrt(counts[good]) / area[good]
    ax.errorbar(mid[good], dens, yerr=[np.minimum(err, 0.9 * dens), err],
                fmt="o", ms=4, label=f"members (p_kin > {result.config.king_p_min:.1f})")
    if king is not None:
        rr = np.geomspace(edges[1] / 3.0, rmax, 200)
        norm = disc_fraction_norm(king.xi0_arcmin, king.eta0_arcmin, king.rc_arcmin,
                                  king.rt_arcmin, king.fit_radius_arcmin)
        model = (king.n_cluster * king_density(rr, king.rc_arcmin, king.rt_arcmin) / norm
                 + king.background_per_arcmin2)
        ax.plot(rr, model, "r-", label=(f"King: rc = {king.rc_arcmin:.2f} ± "
                                        f"{king.rc_err_arcmin:.2f}′, rt = {king.rt_arcmin:.1f}′"))
        if king.background_per_arcmin2 > 1e-3 * dens.max(initial=0.0):
            ax.axhline(king.background_per_arcmin2, color="0.5", ls="--", label="background")
        ax.axvline(king.r50_members_arcmin, color="g", ls=":", label="r50 (members)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if good.any():
        ax.set_ylim(0.3 * dens.min(), 3.0 * dens.max())
    ax.set_xlabel("radius [arcmin]")
    ax.set_ylabel("surface density [stars / arcmin²]")
    ax.set_title("Radial profile")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_sky(result: MembershipResult, path: str | Path) -> Path:
    """Sky map (tangent-plane offsets) of members coloured by membership probability."""
    s = result.sample
    _, p, mem = _arrays(result)
    fig, ax = new_figure(size=(6.0, 5.5))
    ax.scatter(s.xi[~mem], s.eta[~mem], s=1, c="0.75", lw=0, label="field")
    sc = ax.scatter(s.xi[mem], s.eta[mem], s=5, c=p[mem], cmap="viridis", vmin=P_MEMBER,
                    vmax=1.0, lw=0, label=f"p > {P_MEMBER}")
    if result.king is not None:
        t = np.linspace(0, 2 * np.pi, 200)
        k = result.king
        for rad, style in ((k.rc_arcmin, "r-"), (k.r50_members_arcmin, "g:")):
            ax.plot(k.xi0_arcmin + rad * np.cos(t), k.eta0_arcmin + rad * np.sin(t), style, lw=1)
    fig.colorbar(sc, ax=ax, label="membership probability")
    ax.set_aspect("equal")
    # the cone only: a table may hold stars of far fields as well (a night's Gaia file with
    # its standard fields), which would shrink the cluster to a dot
    lim = float(s.radius_arcmin) * 1.05
    if mem.any():
        lim = min(lim, max(float(np.nanmax(np.hypot(s.xi[mem], s.eta[mem]))) * 1.3, 1.0))
    ax.set_xlim(lim, -lim)
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("ξ (east) [arcmin]")
    ax.set_ylabel("η (north) [arcmin]")
    ax.set_title(f"Members on the sky about ({s.ra0:.3f}, {s.dec0:+.3f})")
    return save_figure(fig, path)


def plot_cmd(result: MembershipResult, path: str | Path) -> Path:
    """Gaia G versus BP-RP of the members (field in grey)."""
    m, p, mem = _arrays(result)
    fig, ax = new_figure(size=(5.0, 6.0))
    if "phot_g_mean_mag" in m.colnames and "bp_rp" in m.colnames:
        g = np.ma.asarray(m["phot_g_mean_mag"]).astype(float).filled(np.nan)
        c = np.ma.asarray(m["bp_rp"]).astype(float).filled(np.nan)
        ax.scatter(c[~mem], g[~mem], s=1, c="0.8", lw=0, label="field")
        sc = ax.scatter(c[mem], g[mem], s=5, c=p[mem], cmap="viridis", vmin=P_MEMBER, vmax=1.0,
                        lw=0, label=f"p > {P_MEMBER}")
        fig.colorbar(sc, ax=ax, label="membership probability")
        ax.invert_yaxis()
    else:
        ax.text(0.5, 0.5, "no G / BP-RP in the input", ha="center", transform=ax.transAxes)
    ax.set_xlabel(r"$G_{BP} - G_{RP}$ [mag]")
    ax.set_ylabel("G [mag]")
    ax.set_title("Colour-magnitude diagram")
    return save_figure(fig, path)


def membership_figure_paths(result: MembershipResult, out_dir: str | Path) -> dict[str, Path]:
    """The figures :func:`membership_figures` writes for ``result``, by name."""
    out = Path(out_dir)
    names = {"sky": "members_sky.png", "cmd": "members_cmd.png",
             "proper_motions": "members_pm.png"}
    if result.status == "ok":
        names["radial_profile"] = "members_radial.png"
    return {k: out / v for k, v in names.items()}


def membership_figures(result: MembershipResult, out_dir: str | Path,
                       names: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Write every membership figure that applies (or those of ``names``) into ``out_dir``;
    return their paths."""
    draw = {"sky": plot_sky, "cmd": plot_cmd, "proper_motions": plot_proper_motions,
            "radial_profile": plot_radial_profile}
    paths = membership_figure_paths(result, out_dir)
    return {k: draw[k](result, p) for k, p in paths.items() if names is None or k in names}
