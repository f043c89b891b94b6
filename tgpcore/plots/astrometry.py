"""QC figure of a plate solution: the residuals of the matched stars against position."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from tgpcore.plots.style import STYLE, plt, save_figure


def astrometry_figure(residuals: Mapping[str, list], shape: tuple[int, int],
                      path: str | Path, title: str = "", rms_arcsec: float | None = None,
                      sip_degree: int | None = None, scale_arcsec: float | None = None) -> Path:
    """Residuals (catalogue minus fitted position) of a plate solution's matched stars.

    Left: arrows over the image (pixel axes, as the image is stored), magnified so that the
    key arrow's length reads in arcsec. Right: the residual along x and along y (arcsec)
    against x and against y; a systematic trend there is distortion the fit missed. Stars the
    fit clipped are red crosses.

    Parameters
    ----------
    residuals : mapping
        Lists ``x``, ``y`` (0-based px), ``dx_px``, ``dy_px`` (catalogue position through the
        WCS minus the detection, px) and ``used`` (kept by the fit), as in
        :attr:`tgpcore.astrometry.Solution.residuals`.
    shape : (ny, nx)
        Image shape.
    path : path-like
        PNG file.
    title : str
        First line of the title (e.g. the stack's name); RMS, star count and distortion
        degree are added.
    rms_arcsec : float, optional
        The solution's RMS (default: computed from the kept stars).
    sip_degree : int, optional
        Distortion degree (None: TAN).
    scale_arcsec : float, optional
        Pixel scale (default: from the residuals' east/north columns when present, else 1).

    Returns
    -------
    Path
    """
    x = np.asarray(residuals["x"], float)
    y = np.asarray(residuals["y"], float)
    dx = np.asarray(residuals["dx_px"], float)
    dy = np.asarray(residuals["dy_px"], float)
    used = np.asarray(residuals.get("used", np.ones(len(x), bool)), bool)
    if scale_arcsec is None:
        e = np.asarray(residuals.get("east_arcsec", []), float)
        n = np.asarray(residuals.get("north_arcsec", []), float)
        d = np.hypot(dx, dy)
        ok = d > 0
        scale_arcsec = (float(np.median(np.hypot(e, n)[ok] / d[ok]))
                        if len(e) == len(x) and ok.any() else 1.0)
    ex, ey = dx * scale_arcsec, dy * scale_arcsec
    if rms_arcsec is None and used.any():
        rms_arcsec = float(np.sqrt(np.mean(ex[used] ** 2 + ey[used] ** 2)))
    ny, nx = shape
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(12.0, 5.6))
        gs = fig.add_gridspec(2, 3, width_ratios=[1.25, 1.0, 1.0], wspace=0.32, hspace=0.35)
        ax = fig.add_subplot(gs[:, 0])
        typical = float(np.percentile(np.hypot(ex[used], ey[used]), 75)) if used.any() else 0.1
        key = float(_nice(max(typical, 1e-3)))
        # an arrow of the key's length spans 6 % of the image
        mag = 0.06 * max(nx, ny) / (key / scale_arcsec)
        ax.plot(x[used], y[used], ".", ms=2, color="0.5")
        ax.quiver(x[used], y[used], dx[used] * mag, dy[used] * mag, angles="xy",
                  scale_units="xy", scale=1.0, width=0.003, color="tab:blue")
        if (~used).any():
            ax.plot(x[~used], y[~used], "x", color="tab:red", ms=6, label="clipped")
            ax.legend(loc="upper right", fontsize=8)
        kx, ky = 0.06 * nx, -0.07 * ny
        ax.quiver([kx], [ky], [key / scale_arcsec * mag], [0.0], angles="xy",
                  scale_units="xy", scale=1.0, width=0.005, color="k", clip_on=False)
        ax.text(kx, ky - 0.035 * ny, f'{key:g}"', fontsize=9, va="top")
        ax.set_xlim(-0.5, nx - 0.5)
        ax.set_ylim(-0.12 * ny, ny - 0.5)
        ax.set_aspect("equal")
        ax.add_patch(plt.Rectangle((-0.5, -0.5), nx, ny, fill=False, lw=0.8, color="0.4"))
        ax.set_xlabel("x (px)")
        ax.set_ylabel("y (px)")
        ax.set_title("residuals over the image", fontsize=10)
        lim = max(3.0 * (rms_arcsec or 0.1), 1e-3)
        for row, (res, lab) in enumerate(((ex, "along x"), (ey, "along y"))):
            for col, (pos, plab) in enumerate(((x, "x (px)"), (y, "y (px)"))):
                a = fig.add_subplot(gs[row, col + 1])
                a.plot(pos[used], res[used], ".", ms=4, color="tab:blue")
                if (~used).any():
                    a.plot(pos[~used], np.clip(res[~used], -lim, lim), "x", ms=5,
                           color="tab:red")
                a.axhline(0.0, color="k", lw=0.8)
                a.set_ylim(-lim, lim)
                a.set_xlabel(plab)
                a.set_ylabel(f'residual {lab} (")')
        n_used, n_clip = int(used.sum()), int((~used).sum())
        model = "TAN" if not sip_degree else f"TAN-SIP degree {sip_degree}"
        head = f"{title}: " if title else ""
        rms = f'{rms_arcsec:.3f}"' if rms_arcsec is not None else "n/a"
        fig.suptitle(f"{head}astrometric RMS {rms} on N = {n_used} stars"
                     + (f" ({n_clip} clipped)" if n_clip else "") + f"; {model}",
                     fontsize=11)
    return save_figure(fig, path)


def _nice(v: float) -> float:
    """1, 2 or 5 times a power of ten, near ``v``."""
    p = 10.0 ** np.floor(np.log10(v))
    for m in (1.0, 2.0, 5.0, 10.0):
        if v <= m * p * 1.5:
            return m * p
    return 10.0 * p
