"""The true photometric system of a simulated night.

Convention (per filter F)::

    m_std - m_inst = ZP_F - k_F * X + c_F * colour_F
    m_inst = -2.5 log10(flux in e-/s)

with colour_F = (B - V) for B and V, and (U - B) for U. The same convention converts the sky
surface brightness (mag/arcsec²) into e-/s per pixel, without extinction or colour term.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: The colour (pair of standard bands) used by each filter's colour term.
COLOUR_OF: dict[str, tuple[str, str]] = {"U": ("U", "B"), "B": ("B", "V"), "V": ("B", "V")}


@dataclass(frozen=True)
class PhotometricSystem:
    """Zero points ``zp``, extinction coefficients ``k`` (mag/airmass) and colour terms ``c``."""

    zp: dict[str, float]
    k: dict[str, float]
    c: dict[str, float]
    colour_of: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(COLOUR_OF))

    def colour(self, filt: str, mags: dict[str, np.ndarray]) -> np.ndarray:
        """The colour used by ``filt``'s colour term, from standard magnitudes ``mags``."""
        a, b = self.colour_of[filt]
        return np.asarray(mags[a]) - np.asarray(mags[b])

    def instrumental_mag(self, filt: str, mags: dict[str, np.ndarray],
                         airmass: float) -> np.ndarray:
        """m_inst = m_std - ZP + k X - c colour, for standard magnitudes ``mags`` (by band)."""
        return (np.asarray(mags[filt]) - self.zp[filt] + self.k[filt] * airmass
                - self.c[filt] * self.colour(filt, mags))

    def flux_e_per_s(self, filt: str, mags: dict[str, np.ndarray], airmass: float) -> np.ndarray:
        """Detected flux (e-/s, before flat-field response) of stars with standard ``mags``.

        Parameters
        ----------
        filt : str
            Filter of the frame (``U``, ``B`` or ``V``).
        mags : dict of array
            Standard magnitudes by band; needs ``filt`` and the bands of its colour.
        airmass : float
            Airmass of the frame.

        Returns
        -------
        ndarray
            Flux in electrons per second.
        """
        return 10.0 ** (-0.4 * self.instrumental_mag(filt, mags, airmass))

    def sky_e_per_s(self, filt: str, sky_mag_arcsec2: float, pixel_scale_arcsec: float) -> float:
        """Sky rate (e-/s per pixel) for a surface brightness in mag/arcsec²."""
        mag_per_pixel = sky_mag_arcsec2 - 2.5 * np.log10(pixel_scale_arcsec**2)
        return float(10.0 ** (-0.4 * (mag_per_pixel - self.zp[filt])))

    def to_dict(self) -> dict:
        """JSON-ready dictionary, including the convention in words."""
        return {"convention": "m_std - m_inst = ZP - k*X + c*colour; m_inst = -2.5 log10(e-/s)",
                "zp": dict(self.zp), "k": dict(self.k), "c": dict(self.c),
                "colour_of": {f: list(v) for f, v in self.colour_of.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> PhotometricSystem:
        """Inverse of :meth:`to_dict`."""
        return cls(zp=dict(d["zp"]), k=dict(d["k"]), c=dict(d["c"]),
                   colour_of={f: tuple(v) for f, v in d["colour_of"].items()})
