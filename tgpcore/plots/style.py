"""Matplotlib set-up shared by every figure: Agg backend, one house style, atomic saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from tgpcore.io.atomic import atomic_path  # noqa: E402

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "image.origin": "lower",
}


def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (6.0, 4.5), **kw):
    """A figure and axes with the house style."""
    with plt.rc_context(STYLE):
        return plt.subplots(nrows, ncols, figsize=size, **kw)


def save_figure(fig, path: str | Path) -> Path:
    """Save a figure atomically (PNG by the suffix) and close it."""
    path = Path(path)
    with plt.rc_context(STYLE), atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", bbox_inches="tight")
    plt.close(fig)
    return path
