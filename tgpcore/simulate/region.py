"""Rectangular sky regions in a tangent plane, where stars are drawn and catalogued."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tgpcore.gnomonic import from_tangent, to_tangent


@dataclass(frozen=True)
class SkyRegion:
    """A box in the tangent plane about (ra0, dec0): xi (east) and eta (north) limits in deg."""

    name: str
    ra0: float
    dec0: float
    xi_min: float
    xi_max: float
    eta_min: float
    eta_max: float

    @property
    def area_arcmin2(self) -> float:
        """Area in square arcminutes (tangent-plane, exact enough for fields < 1 deg)."""
        return (self.xi_max - self.xi_min) * (self.eta_max - self.eta_min) * 3600.0

    def contains(self, ra, dec) -> np.ndarray:
        """True where (ra, dec) lies inside the box."""
        xi, eta = to_tangent(self.ra0, self.dec0, ra, dec)
        return ((xi >= self.xi_min) & (xi < self.xi_max)
                & (eta >= self.eta_min) & (eta < self.eta_max))

    def sample_uniform(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` positions (ra, dec in degrees) uniform in the tangent-plane box."""
        xi = rng.uniform(self.xi_min, self.xi_max, n)
        eta = rng.uniform(self.eta_min, self.eta_max, n)
        return from_tangent(self.ra0, self.dec0, xi, eta)

    def to_dict(self) -> dict:
        """Plain dictionary (for truth.json)."""
        return asdict(self)


def region_around(name: str, ra0: float, dec0: float, ras, decs,
                  margin_deg: float) -> SkyRegion:
    """The smallest box about (ra0, dec0) holding all (ras, decs), grown by ``margin_deg``."""
    xi, eta = to_tangent(ra0, dec0, ras, decs)
    return SkyRegion(name, float(ra0), float(dec0),
                     float(np.min(xi) - margin_deg), float(np.max(xi) + margin_deg),
                     float(np.min(eta) - margin_deg), float(np.max(eta) + margin_deg))
