"""Smooth sky background and its noise, with photutils ``Background2D``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Background:
    """A background map and its per-pixel noise (same units as the image)."""

    background: np.ndarray
    rms: np.ndarray
    box_px: int

    @property
    def median_rms(self) -> float:
        """Median of the noise map."""
        return float(np.median(self.rms))


def estimate_background(data: np.ndarray, mask: np.ndarray | None = None, box_px: int = 64,
                        filter_size: int = 3, nsigma: float = 3.0) -> Background:
    """Estimate the sky background with photutils ``Background2D``.

    Parameters
    ----------
    data : ndarray
        The image.
    mask : ndarray of bool, optional
        Pixels to ignore (True = bad).
    box_px : int
        Mesh size; reduced for small images so that at least four boxes fit along each axis.
    filter_size : int
        Median filter over the mesh (boxes).
    nsigma : float
        Sigma clipping of the pixels of each box (rejects stars).

    Returns
    -------
    Background
    """
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, MedianBackground, StdBackgroundRMS

    data = np.asarray(data, dtype=float)
    box = int(max(8, min(box_px, min(data.shape) // 4)))
    bad = ~np.isfinite(data) if mask is None else (np.asarray(mask, bool) | ~np.isfinite(data))
    try:
        bkg = Background2D(np.where(bad, 0.0, data), box, mask=bad, filter_size=filter_size,
                           sigma_clip=SigmaClip(sigma=nsigma, maxiters=5),
                           bkg_estimator=MedianBackground(),
                           bkg_rms_estimator=StdBackgroundRMS(), exclude_percentile=50.0)
        return Background(np.asarray(bkg.background, float), np.asarray(bkg.background_rms, float),
                          box)
    except ValueError:
        # Too masked for a mesh: one global level.
        from astropy.stats import sigma_clipped_stats

        good = data[~bad]
        if good.size == 0:
            raise ValueError("no unmasked pixel to estimate the background from") from None
        _, med, std = sigma_clipped_stats(good, sigma=nsigma)
        return Background(np.full(data.shape, med), np.full(data.shape, std), box)
