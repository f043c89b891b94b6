"""Extinction that depends on the star: A_band / E(B-V) along an isochrone.

A broad band's extinction depends on the spectrum it is averaged over. A cool star puts more
of its light at long wavelengths, where the extinction is lower, than a hot one: in Gaia's wide
G band, A_G / E(B-V) falls from about 2.8 for an F star to 2.4 for an early M dwarf, and
E(BP-RP) / E(B-V) from 1.45 to 1.3. A single coefficient for all stars (the one of a hot star)
then tilts the reddened isochrone against the data and biases E(B-V) and [M/H].
:class:`ExtinctionModel` gives the coefficient of every isochrone point:

* **Gaia G, BP, RP**: the published relation of the Gaia Collaboration (Babusiaux et al. 2018,
  A&A 616, A10, Eq. 1 and Table 1), ``k_X = A_X / A_0`` as a cubic in the star's intrinsic
  (BP-RP)_0 with terms in A_0 (computed by DPAC from Kurucz spectra, the Fitzpatrick & Massa
  law and the Gaia passbands), valid for -0.06 <= (BP-RP)_0 <= 2.5 (clipped to that range).
  Those are DR2 passbands; the EDR3 ones differ by ~1-2 % in k, which the systematic error
  budget covers with the alternative model below.
* **any other band** (and the alternative for Gaia): the extinction law of
  :mod:`tgpcore.isochrones.extinction` averaged over the band model, weighted by a
  black body at the star's effective temperature *reddened by the extinction itself*,
  ``A_band = -2.5 log10( ∫ w_T(λ) 10^(-0.4 A(λ)) dλ / ∫ w_T(λ) dλ )``, tabulated on a grid of
  log Teff and E(B-V) and interpolated.

E(B-V) keeps its meaning everywhere: the B-V colour excess of a 10 000 K star in the low
extinction limit (:func:`tgpcore.isochrones.extinction.extinction_ratio`), so that
``A_0 = R_0 E(B-V)`` with ``R_0 = A(541.4 nm) / E(B-V) = 3.08`` for F99, R(V) = 3.1.
``ExtinctionModel(..., colour_dependent=False)`` gives the old constant coefficients.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import astropy.units as u
import numpy as np

from tgpcore.isochrones.extinction import (
    _ALIASES,
    _H_C_OVER_K_UM_K,
    BANDPASSES,
    _band_a_over_av,
    _law,
    extinction_ratio,
)

#: Gaia Collaboration, Babusiaux et al. (2018), Table 1: c1..c7 of
#: k = c1 + c2 X + c3 X^2 + c4 X^3 + c5 A0 + c6 A0^2 + c7 X A0, X = (BP-RP)_0.
BABUSIAUX2018: dict[str, tuple[float, ...]] = {
    "G": (0.9761, -0.1704, 0.0086, 0.0011, -0.0438, 0.0013, 0.0099),
    "G_BP": (1.1517, -0.0871, -0.0333, 0.0173, -0.0230, 0.0006, 0.0043),
    "G_RP": (0.6104, -0.0170, -0.0026, -0.0017, -0.0078, 0.00005, 0.0006),
}
#: Validity range of the relation in (BP-RP)_0 (outside: clipped).
BABUSIAUX_COLOUR_RANGE = (-0.06, 2.5)
#: Wavelength (micron) at which A_0 is defined by Babusiaux et al. (2018).
A0_WAVELENGTH_UM = 0.5414
#: Table nodes of the band-averaged model: log Teff and E(B-V).
_LOGT_NODES = np.linspace(3.35, 4.70, 55)
_EBV_NODES = np.array([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])


@functools.lru_cache(maxsize=16)
def r0(law: str = "F99", rv: float = 3.1) -> float:
    """A_0 / E(B-V): extinction at 541.4 nm per unit of our E(B-V) (a 10 000 K star's B-V
    excess)."""
    model = _law(law, rv)
    a0 = float(model(A0_WAVELENGTH_UM * u.micron))
    return a0 / (_band_a_over_av("B", law, float(rv), 10000.0)
                 - _band_a_over_av("V", law, float(rv), 10000.0))


@functools.lru_cache(maxsize=64)
def _band_table(band: str, law: str, rv: float) -> np.ndarray:
    """A_band / E(B-V) on (_LOGT_NODES, _EBV_NODES): black body at Teff reddened by the law."""
    name = _ALIASES.get(band, band)
    bp = BANDPASSES[name]
    model = _law(law, rv)
    lo_um, hi_um = 1.0 / model.x_range[1], 1.0 / model.x_range[0]
    lam = np.linspace(max(bp.center_um - 1.2 * bp.fwhm_um, lo_um * 1.0001),
                      min(bp.center_um + 1.2 * bp.fwhm_um, hi_um * 0.9999), 801)
    a_lam = np.asarray(model(lam * u.micron))          # A(lambda) / A(V)
    ebv_unit = (_band_a_over_av("B", law, rv, 10000.0) - _band_a_over_av("V", law, rv, 10000.0))
    out = np.empty((len(_LOGT_NODES), len(_EBV_NODES)))
    for i, logt in enumerate(_LOGT_NODES):
        teff = 10.0**logt
        w = bp.response(lam) * lam * lam**-5 / np.expm1(_H_C_OVER_K_UM_K / (lam * teff))
        w0 = np.trapezoid(w, lam)
        lin = np.trapezoid(w * a_lam, lam) / w0 / ebv_unit     # E(B-V) -> 0 limit
        out[i, 0] = lin
        for j, e in enumerate(_EBV_NODES[1:], start=1):
            av = e / ebv_unit
            trans = np.trapezoid(w * 10.0 ** (-0.4 * av * a_lam), lam) / w0
            out[i, j] = -2.5 * np.log10(trans) / e
    return out


def band_coefficient(band: str, logte: np.ndarray, ebv: float, *, law: str = "F99",
                     rv: float = 3.1) -> np.ndarray:
    """A_band / E(B-V) of stars of effective temperature 10**logte behind E(B-V) = ``ebv``, from
    the band-averaged law (black-body spectra).

    Parameters
    ----------
    band : str
        A band of :data:`tgpcore.isochrones.extinction.BANDPASSES` (or an alias).
    logte : array_like
        log10 Teff (K); clipped to 3.35-4.70.
    ebv : float
        E(B-V) (mag); the coefficient changes slowly with it (the reddened spectrum).
    law, rv
        Extinction law (``dust_extinction`` name) and R(V).

    Returns
    -------
    ndarray
        The coefficient per star.
    """
    tab = _band_table(band, law, float(rv))
    e = float(np.clip(ebv, 0.0, _EBV_NODES[-1]))
    j = int(min(np.searchsorted(_EBV_NODES, e, side="right") - 1, len(_EBV_NODES) - 2))
    t = (e - _EBV_NODES[j]) / (_EBV_NODES[j + 1] - _EBV_NODES[j])
    col = (1.0 - t) * tab[:, j] + t * tab[:, j + 1]
    return np.interp(np.asarray(logte, float), _LOGT_NODES, col)


def gaia_coefficient(band: str, bp_rp0: np.ndarray, ebv: float, *, law: str = "F99",
                     rv: float = 3.1) -> np.ndarray:
    """A_X / E(B-V) for Gaia G, BP or RP from Babusiaux et al. (2018) at intrinsic colour
    ``bp_rp0`` (clipped to their range) and A_0 = R_0 E(B-V)."""
    c = BABUSIAUX2018[_ALIASES.get(band, band)]
    x = np.clip(np.asarray(bp_rp0, float), *BABUSIAUX_COLOUR_RANGE)
    rr = r0(law, rv)
    a0 = rr * max(float(ebv), 0.0)
    k = c[0] + x * (c[1] + x * (c[2] + x * c[3])) + c[4] * a0 + c[5] * a0 * a0 + c[6] * x * a0
    return k * rr


@dataclass(frozen=True)
class ExtinctionModel:
    """A_band / E(B-V) for every point of an isochrone.

    Parameters
    ----------
    bands : tuple of str
        Isochrone bands, in the order of the coefficients returned.
    law : str
        ``dust_extinction`` law (``F99`` default, ``G23``, ``CCM89``, ...).
    rv : float
        R(V).
    colour_dependent : bool
        ``False``: one coefficient per band, a 10 000 K star's at low extinction (the old
        behaviour, and the simulator's).
    gaia : {'babusiaux2018', 'bandpass'}
        How Gaia bands are done: the published relation, or the band-averaged law like
        other bands (the alternative of the systematic error budget).
    """

    bands: tuple[str, ...]
    law: str = "F99"
    rv: float = 3.1
    colour_dependent: bool = True
    gaia: str = "babusiaux2018"

    def __post_init__(self) -> None:
        if self.gaia not in ("babusiaux2018", "bandpass"):
            raise ValueError(f"unknown Gaia extinction model {self.gaia!r}")
        object.__setattr__(self, "bands", tuple(self.bands))

    @functools.cached_property
    def constant(self) -> np.ndarray:
        """The constant coefficients (10 000 K star, low extinction), shape (n_bands,)."""
        return np.array([extinction_ratio(b, law=self.law, rv=self.rv) for b in self.bands])

    def _uses_babusiaux(self, band: str) -> bool:
        return self.gaia == "babusiaux2018" and _ALIASES.get(band, band) in BABUSIAUX2018

    @property
    def needs_gaia_colour(self) -> bool:
        """True when the isochrone must carry G_BP and G_RP (for the Gaia relation)."""
        return self.colour_dependent and any(self._uses_babusiaux(b) for b in self.bands)

    def coefficients(self, eep: dict[str, np.ndarray], ebv: float) -> np.ndarray:
        """A_band / E(B-V) per isochrone point.

        Parameters
        ----------
        eep : dict of ndarray
            Isochrone arrays (``logTe``; ``G_BP`` and ``G_RP`` for the Gaia relation), as
            :meth:`tgpcore.isochrones.IsochroneInterpolator.eep_arrays` returns them.
        ebv : float
            E(B-V).

        Returns
        -------
        ndarray, shape (n_points, n_bands) or (n_bands,)
            Per point; the constant vector when ``colour_dependent`` is false.
        """
        if not self.colour_dependent:
            return self.constant
        logte = np.asarray(eep["logTe"], float)
        out = np.empty((len(logte), len(self.bands)))
        bp_rp0 = None
        for k, b in enumerate(self.bands):
            if self._uses_babusiaux(b):
                if bp_rp0 is None:
                    if "G_BP" not in eep or "G_RP" not in eep:
                        raise KeyError("the Gaia extinction relation needs G_BP and G_RP "
                                       "on the isochrone")
                    bp_rp0 = np.asarray(eep["G_BP"], float) - np.asarray(eep["G_RP"], float)
                out[:, k] = gaia_coefficient(b, bp_rp0, ebv, law=self.law, rv=self.rv)
            else:
                out[:, k] = band_coefficient(b, logte, ebv, law=self.law, rv=self.rv)
        bad = ~np.isfinite(out)
        if bad.any():
            out[bad] = np.broadcast_to(self.constant, out.shape)[bad]
        return out

    def describe(self) -> str:
        """One line for fit.json's method."""
        if not self.colour_dependent:
            return (f"constant A_band/E(B-V) of a 10000 K star ({self.law}, R_V={self.rv:g})")
        parts = []
        if any(self._uses_babusiaux(b) for b in self.bands):
            parts.append("Gaia bands: k_X((BP-RP)_0, A_0) of Babusiaux et al. 2018 "
                         f"(A_0 = {r0(self.law, self.rv):.3f} E(B-V))")
        others = [b for b in self.bands if not self._uses_babusiaux(b)]
        if others:
            parts.append(f"{'/'.join(others)}: {self.law} (R_V={self.rv:g}) averaged over each "
                         "band, weighted by a black body at the point's Teff reddened by the "
                         "extinction itself")
        return "per-star extinction: " + "; ".join(parts)

    def alternative(self) -> ExtinctionModel:
        """The other credible model, for the systematic error budget: Gaia bands from the
        band-averaged law instead of the published relation; other bands with the Gordon et
        al. (2023) law instead of Fitzpatrick (1999)."""
        if any(self._uses_babusiaux(b) for b in self.bands):
            return ExtinctionModel(self.bands, self.law, self.rv, self.colour_dependent,
                                   "bandpass")
        law = "G23" if self.law != "G23" else "F99"
        return ExtinctionModel(self.bands, law, self.rv, self.colour_dependent, self.gaia)


def star_coefficients(band: str, logte: np.ndarray, bp_rp0: np.ndarray | None,
                      ebv: np.ndarray, *, law: str = "F99", rv: float = 3.1,
                      gaia: str = "babusiaux2018") -> np.ndarray:
    """A_band / E(B-V) of individual stars, each with its own Teff, intrinsic (BP-RP)_0 and
    E(B-V): what :class:`ExtinctionModel` gives along an isochrone, for a list of stars (the
    simulator's).

    Parameters
    ----------
    band : str
        Isochrone band name.
    logte : array_like
        log10 Teff of each star.
    bp_rp0 : array_like or None
        Intrinsic Gaia colour of each star (needed for Gaia bands with ``gaia`` =
        ``'babusiaux2018'``).
    ebv : array_like
        E(B-V) of each star (or one value for all).
    """
    logte = np.asarray(logte, float)
    e = np.clip(np.broadcast_to(np.asarray(ebv, float), logte.shape), 0.0, _EBV_NODES[-1])
    name = _ALIASES.get(band, band)
    if gaia == "babusiaux2018" and name in BABUSIAUX2018:
        if bp_rp0 is None:
            raise KeyError("the Gaia extinction relation needs each star's (BP-RP)_0")
        c = BABUSIAUX2018[name]
        x = np.clip(np.asarray(bp_rp0, float), *BABUSIAUX_COLOUR_RANGE)
        rr = r0(law, rv)
        a0 = rr * e
        k = c[0] + x * (c[1] + x * (c[2] + x * c[3])) + c[4] * a0 + c[5] * a0 * a0 \
            + c[6] * x * a0
        return k * rr
    from scipy.interpolate import RegularGridInterpolator

    tab = _band_table(band, law, float(rv))
    interp = RegularGridInterpolator((_LOGT_NODES, _EBV_NODES), tab, bounds_error=False,
                                     fill_value=None)
    pts = np.column_stack([np.clip(logte, _LOGT_NODES[0], _LOGT_NODES[-1]), e])
    return interp(pts)
