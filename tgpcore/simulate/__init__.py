"""Synthetic observing nights with full truth: the ground truth for tgp's tests.

>>> from tgpcore.simulate import simulate_night, load_truth, render_signal
>>> night = simulate_night("night/", preset="tiny", seed=1)    # doctest: +SKIP

writes ``night/raw/sim_0001.fits ...`` (bias, dark, flat, science and standard frames,
classified only by their headers) and ``night/truth/`` (see :mod:`tgpcore.simulate.truth`).
"""

from tgpcore.simulate.night import simulate_night
from tgpcore.simulate.photsys import PhotometricSystem
from tgpcore.simulate.presets import PRESETS, STANDARD_FIELDS, SimPreset, resolve_preset
from tgpcore.simulate.render import frame_stars, positions_at_epoch, render_signal
from tgpcore.simulate.truth import NightTruth, load_truth
from tgpcore.simulate.wcs import truth_wcs

__all__ = [
    "PRESETS",
    "STANDARD_FIELDS",
    "NightTruth",
    "PhotometricSystem",
    "SimPreset",
    "frame_stars",
    "load_truth",
    "positions_at_epoch",
    "render_signal",
    "resolve_preset",
    "simulate_night",
    "truth_wcs",
]
