"""Interstellar extinction per photometric band, from a real extinction law.

A broad band's extinction is the law averaged over the band: each band is a smooth flat-topped
response (a 4th-order super-Gaussian of the band's FWHM around its effective wavelength),
weighted by a photon-counting blackbody spectrum, in the low-extinction limit::

    a_band = ∫ R(λ) λ B_λ(T) A(λ)/A(V) dλ / ∫ R(λ) λ B_λ(T) dλ

The ratio returned is ``A_band / E(B-V) = a_band / (a_B - a_V)``, so that E(B-V) is the colour
excess seen in the (band-averaged) B-V colour and, by construction,
``ratio('B') - ratio('V') == 1``. The default law is Fitzpatrick (1999) at R(V)=3.1 with
T=10000 K, which gives A_V/E(B-V) = 3.05 and E(U-B)/E(B-V) = 0.72 (the classical value).
Gordon et al. (2023, ``law="G23"``) gives 0.81 for the same band models, because its
near-UV curve rises more steeply across the wide U band.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from dust_extinction import parameter_averages

_H_C_OVER_K_UM_K = 14387.7688  # h c / k in micron kelvin


@dataclass(frozen=True)
class Bandpass:
    """A simple model of a photometric band: effective wavelength and FWHM in micron."""

    name: str
    center_um: float
    fwhm_um: float

    def response(self, lam_um: np.ndarray) -> np.ndarray:
        """Relative response (peak 1, 0.5 at ±FWHM/2) at the wavelengths ``lam_um``."""
        x = 2.0 * (np.asarray(lam_um) - self.center_um) / self.fwhm_um
        return np.exp(-np.log(2.0) * x**4)


# Effective wavelengths and widths: the PARSEC/chronos band table for Johnson, Gaia EDR3 and
# SDSS; 2MASS from Cohen et al. (2003).
BANDPASSES: dict[str, Bandpass] = {b.name: b for b in [
    Bandpass("U", 0.35985, 0.0584), Bandpass("B", 0.43859, 0.0913),
    Bandpass("V", 0.54906, 0.0857), Bandpass("R", 0.65947, 0.1591),
    Bandpass("I", 0.80599, 0.1495), Bandpass("J", 1.23693, 0.2047),
    Bandpass("H", 1.64645, 0.2854), Bandpass("K", 2.21055, 0.3646),
    Bandpass("G", 0.63902, 0.4416), Bandpass("G_BP", 0.51826, 0.2617),
    Bandpass("G_RP", 0.78251, 0.2863),
    Bandpass("u", 0.35618, 0.0558), Bandpass("g", 0.47189, 0.1158),
    Bandpass("r", 0.61852, 0.1111), Bandpass("i", 0.74997, 0.1045),
    Bandpass("z", 0.89615, 0.1125),
    Bandpass("J_2MASS", 1.235, 0.162), Bandpass("H_2MASS", 1.662, 0.251),
    Bandpass("Ks_2MASS", 2.159, 0.262),
]}
# Aliases used in tables (stars.ecsv uses BP/RP for the Gaia bands).
_ALIASES = {"BP": "G_BP", "RP": "G_RP", "Ks": "Ks_2MASS"}


def _law(name: str, rv: float):
    try:
        cls = getattr(parameter_averages, name)
    except AttributeError:
        raise ValueError(f"unknown extinction law {name!r} (dust_extinction.parameter_averages)") from None
    return cls(Rv=rv)


@functools.lru_cache(maxsize=256)
def _band_a_over_av(band: str, law: str, rv: float, teff: float) -> float:
    bp = BANDPASSES[band]
    model = _law(law, rv)
    lo_um, hi_um = 1.0 / model.x_range[1], 1.0 / model.x_range[0]
    lam = np.linspace(max(bp.center_um - 1.2 * bp.fwhm_um, lo_um * 1.0001),
                      min(bp.center_um + 1.2 * bp.fwhm_um, hi_um * 0.9999), 801)
    planck = lam**-5 / np.expm1(_H_C_OVER_K_UM_K / (lam * teff))
    weight = bp.response(lam) * lam * planck
    a = model(lam * u.micron)
    return float(np.trapezoid(weight * a, lam) / np.trapezoid(weight, lam))


def extinction_ratio(band: str, *, law: str = "F99", rv: float = 3.1,
                     teff: float = 10000.0) -> float:
    """A_band / E(B-V) for a standard band.

    Parameters
    ----------
    band : str
        A standard band name (``U B V R I J H K G G_BP G_RP u g r i z J_2MASS H_2MASS
        Ks_2MASS``; ``BP``, ``RP`` and ``Ks`` are accepted as aliases).
    law : str
        A ``dust_extinction.parameter_averages`` model name (``F99``, ``G23``, ``CCM89``, ...).
    rv : float
        R(V) of the law.
    teff : float
        Temperature (K) of the blackbody used to weight the band average.

    Returns
    -------
    float
        Extinction in the band per unit E(B-V), E(B-V) being the band-averaged B-V excess.
    """
    name = _ALIASES.get(band, band)
    if name not in BANDPASSES:
        raise KeyError(f"no bandpass for band {band!r}; known: {sorted(BANDPASSES)}")
    args = (law, float(rv), float(teff))
    ebv = _band_a_over_av("B", *args) - _band_a_over_av("V", *args)
    return _band_a_over_av(name, *args) / ebv


def extinction_ratios(bands: list[str] | tuple[str, ...] | None = None, *, law: str = "F99",
                      rv: float = 3.1, teff: float = 10000.0) -> dict[str, float]:
    """A_band / E(B-V) for several bands (all of :data:`BANDPASSES` by default).

    Parameters
    ----------
    bands : sequence of str, optional
        Band names; see :func:`extinction_ratio`.
    law, rv, teff
        As in :func:`extinction_ratio`.

    Returns
    -------
    dict
        Band name -> A_band / E(B-V).
    """
    names = list(BANDPASSES) if bands is None else list(bands)
    return {b: extinction_ratio(b, law=law, rv=rv, teff=teff) for b in names}
