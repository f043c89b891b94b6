"""From expected electrons to a raw uint16 frame: shot noise, cosmic rays, full well,
gain, bias with its structure, read noise, overscan and ADC saturation."""

from __future__ import annotations

import numpy as np

from tgpcore.simulate.cosmics import CosmicRays
from tgpcore.simulate.detector import Detector


def expose(detector: Detector, light_e: np.ndarray | None, exptime_s: float,
           cosmics: CosmicRays | None, rng: np.random.Generator) -> np.ndarray:
    """Electrons collected in the imaging area (float array).

    Parameters
    ----------
    detector : Detector
        The CCD (dark-current map).
    light_e : ndarray or None
        Expected photo-electrons per pixel, already multiplied by the flat-field response.
    exptime_s : float
        Exposure time (for the dark current).
    cosmics : CosmicRays or None
        Charge added without shot noise.
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    ndarray
        Poisson-sampled light + dark, plus cosmic rays, capped at the full well.
    """
    mean = detector.dark_current * exptime_s
    if light_e is not None:
        mean = mean + light_e
    electrons = rng.poisson(mean).astype(np.float64)
    if cosmics is not None and len(cosmics.charge_e):
        electrons[cosmics.y, cosmics.x] += cosmics.charge_e
    return np.minimum(electrons, detector.full_well_e)


def digitize(detector: Detector, electrons: np.ndarray | None, bias_level_adu: float,
             rng: np.random.Generator) -> np.ndarray:
    """Raw frame (ny, nx + n_overscan) in ADU as uint16.

    Imaging area: ``electrons / gain + bias_level_adu + bias_structure + read noise``;
    overscan: ``bias_level_adu + read noise``; rounded and clipped to [0, saturation_adu].
    Read noise: white, plus the detector's pickup sinusoid along the rows (if any).
    """
    rn_adu = detector.read_noise_e / detector.gain_e_per_adu
    raw = np.empty(detector.raw_shape)
    image = raw[:, :detector.nx]
    image[...] = bias_level_adu + detector.bias_structure
    if electrons is not None:
        image += electrons / detector.gain_e_per_adu
    raw[:, detector.nx:] = bias_level_adu
    raw += rng.normal(0.0, rn_adu, raw.shape)
    if detector.pickup_noise_e > 0:
        amp = np.sqrt(2.0) * detector.pickup_noise_e / detector.gain_e_per_adu
        phase = rng.uniform(0.0, 2.0 * np.pi, raw.shape[0])
        x = np.arange(raw.shape[1])
        raw += amp * np.sin(2.0 * np.pi * detector.pickup_cycles_per_px * x[None, :]
                            + phase[:, None])
    return np.clip(np.rint(raw), 0, detector.saturation_adu).astype(np.uint16)
