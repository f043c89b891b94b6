"""Stellar populations drawn from real isochrones: the cluster and the field.

Every star (a single star or an unresolved binary) gets initial masses from the Kroupa IMF,
magnitudes interpolated in initial mass along a PARSEC isochrone, a distance, interstellar
extinction from :mod:`tgpcore.isochrones.extinction`, a position and a space motion.

Stars whose initial mass exceeds the isochrone's largest one are dead and dropped; so are the
few in the thermally pulsing AGB phase and beyond (PARSEC label >= 8), whose dusty-envelope
magnitudes are not meaningful in the optical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table, vstack

from tgpcore.gnomonic import from_tangent
from tgpcore.isochrones.extinction import extinction_ratios
from tgpcore.isochrones.grid import IsochroneGrid
from tgpcore.isochrones.reddening import star_coefficients
from tgpcore.simulate.imf import sample_kroupa
from tgpcore.simulate.king import sample_king_radii
from tgpcore.simulate.region import SkyRegion

#: Isochrone bands carried by the simulation, and their names in star tables.
BANDS: dict[str, str] = {"U": "U", "B": "B", "V": "V", "G": "G", "G_BP": "BP", "G_RP": "RP"}
#: Bands whose extinction depends on each star's colour in the simulator (see _apparent).
GAIA_BANDS = ("G", "G_BP", "G_RP")
K_KMS_PER_MASYR_KPC = 4.740470  # km/s per (mas/yr * kpc)
_MAX_LABEL = 7


@dataclass(frozen=True)
class Component:
    """One field-star population: a single isochrone with a weight and kinematics.

    ``scale_kpc`` shapes the line-of-sight density ∝ d² exp(-d/scale); ``sigma_kms`` is the
    dispersion of each transverse velocity component about ``mean_v_kms`` (east, north).
    """

    log_age: float
    mh: float
    weight: float
    sigma_kms: float
    scale_kpc: float
    mean_v_kms: tuple[float, float] = (-12.0, -8.0)


#: Field populations towards a low-latitude cluster: thin disc (young to old), thick disc, halo.
FIELD_COMPONENTS: tuple[Component, ...] = (
    Component(8.4, 0.05, 0.10, 15.0, 1.5),
    Component(9.0, 0.05, 0.25, 25.0, 1.5),
    Component(9.6, -0.2, 0.35, 35.0, 1.5),
    Component(10.0, -0.7, 0.22, 55.0, 1.2),
    Component(10.1, -1.45, 0.08, 120.0, 3.0, (-150.0, -100.0)),
)
#: Populations from which Landolt-like standards are chosen (hot young stars for B-V < 0).
STANDARD_COMPONENTS: tuple[Component, ...] = (
    Component(7.2, 0.05, 0.25, 15.0, 1.0),
    Component(8.4, 0.05, 0.25, 15.0, 1.0),
    Component(9.6, -0.2, 0.30, 35.0, 1.0),
    Component(10.0, -0.7, 0.20, 55.0, 1.0),
)


def _combine(m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """Magnitude of the summed flux of two magnitudes (inf = no light)."""
    return -2.5 * np.log10(10.0 ** (-0.4 * m1) + 10.0 ** (-0.4 * m2))


def draw_systems(iso: Table, n: int, rng: np.random.Generator,
                 binary_fraction: float) -> dict[str, np.ndarray]:
    """Draw ``n`` systems from the IMF on one isochrone; return the living ones.

    Parameters
    ----------
    iso : astropy.table.Table
        One isochrone in the internal form (sorted by ``Mini``).
    n : int
        Systems drawn (before dead ones are dropped).
    rng : numpy.random.Generator
        Random generator.
    binary_fraction : float
        Probability that a system is a binary; its secondary has mass ratio q ~ U(0.1, 1).

    Returns
    -------
    dict of ndarray
        ``mini`` (primary initial mass), ``q`` (0 for single stars), ``is_binary``, ``mass``
        (present-day system mass) and absolute magnitudes in the :data:`BANDS` (isochrone
        names), fluxes of binaries combined per band.
    """
    mini_grid = np.asarray(iso["Mini"])
    label = np.asarray(iso["label"])
    m_min, m_max = float(mini_grid[0]), float(mini_grid[-1])
    m1 = sample_kroupa(n, rng, m_lo=max(m_min, 0.1), m_hi=100.0)
    is_bin = rng.random(n) < binary_fraction
    q = np.where(is_bin, rng.uniform(0.1, 1.0, n), 0.0)
    alive = m1 <= m_max
    last_label = label[np.clip(np.searchsorted(mini_grid, m1, side="right") - 1, 0, len(label) - 1)]
    keep = alive & (last_label <= _MAX_LABEL)
    m1, q, is_bin = m1[keep], q[keep], is_bin[keep]
    m2 = q * m1
    lit2 = is_bin & (m2 >= m_min)
    mass_grid = np.asarray(iso["Mass"])
    mass = np.interp(m1, mini_grid, mass_grid) + np.where(
        lit2, np.interp(m2, mini_grid, mass_grid), m2)
    out = {"mini": m1, "q": q, "is_binary": is_bin, "mass": mass,
           "logTe": np.interp(m1, mini_grid, np.asarray(iso["logTe"]))}
    for band in BANDS:
        grid_mag = np.asarray(iso[band])
        mag1 = np.interp(m1, mini_grid, grid_mag)
        mag2 = np.where(lit2, np.interp(m2, mini_grid, grid_mag), np.inf)
        out[band] = _combine(mag1, mag2)
    return out


def _apparent(systems: dict[str, np.ndarray], dist_pc: np.ndarray, ebv: np.ndarray,
              ratios: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Apparent magnitudes: distance modulus plus extinction.

    In Gaia's wide bands each star gets its own A/E(B-V), the fit's model
    (:func:`tgpcore.isochrones.reddening.star_coefficients`: Babusiaux et al. 2018 at the
    system's intrinsic BP-RP): with one coefficient per band, a simulated cluster at E(B-V)
    0.3 put the Gaia-band fit 0.2 dex off in age and raised a false disagreement with our own
    photometry. U, B and V keep one coefficient per band (a 10 000 K star's): there the star's
    spectrum moves the coefficient by a few per cent, and the simulated nights' photometric
    truth tests are calibrated on it. ``ratios`` forces constant coefficients everywhere.
    """
    dm = 5.0 * np.log10(dist_pc) - 5.0
    ebv = np.broadcast_to(np.asarray(ebv, float), np.shape(systems["mini"]))
    const = ratios or extinction_ratios(list(BANDS))
    bp_rp0 = systems["G_BP"] - systems["G_RP"]
    out = {}
    for b in BANDS:
        if ratios is None and b in GAIA_BANDS:
            k = star_coefficients(b, systems["logTe"], bp_rp0, ebv)
        else:
            k = const[b]
        out[BANDS[b]] = systems[b] + dm + k * ebv
    return out


def _star_table(n: int) -> dict[str, np.ndarray]:
    return {"field": np.full(n, "", dtype="U16"), "standard_name": np.full(n, "", dtype="U16")}


def sample_cluster(grid: IsochroneGrid, rng: np.random.Generator, *, name: str, ra: float,
                   dec: float, log_age: float, mh: float, distance_pc: float, ebv: float,
                   core_radius_arcmin: float, tidal_radius_arcmin: float, n_systems: int,
                   binary_fraction: float, pmra_masyr: float, pmdec_masyr: float,
                   velocity_dispersion_kms: float, faint_limit_v: float,
                   region: SkyRegion) -> Table:
    """Members of a King-profile cluster on the nearest grid isochrone, inside ``region``.

    Parameters
    ----------
    grid : IsochroneGrid
        Isochrone grid.
    rng : numpy.random.Generator
        Random generator.
    name, ra, dec
        Cluster name and centre (degrees).
    log_age, mh, distance_pc, ebv
        Age, metallicity, distance and reddening E(B-V).
    core_radius_arcmin, tidal_radius_arcmin
        King radii.
    n_systems : int
        Systems drawn from the IMF (>= 0.1 Msun) before dead, faint and outside ones go.
    binary_fraction : float
        Fraction of binaries.
    pmra_masyr, pmdec_masyr, velocity_dispersion_kms
        Proper-motion centroid and internal 1-D velocity dispersion.
    faint_limit_v : float
        Members fainter than this V are dropped.
    region : SkyRegion
        Only members inside are kept.

    Returns
    -------
    astropy.table.Table
        One row per member (see :func:`tgpcore.simulate.night.simulate_night` for columns).
    """
    iso = grid.isochrone(log_age, mh)
    sys_ = draw_systems(iso, n_systems, rng, binary_fraction)
    n = len(sys_["mini"])
    r = np.radians(sample_king_radii(n, core_radius_arcmin, tidal_radius_arcmin, rng) / 60.0)
    theta = rng.uniform(0.0, 2.0 * np.pi, n)
    ras, decs = from_tangent(ra, dec, np.degrees(r * np.sin(theta)),
                                 np.degrees(r * np.cos(theta)))
    rt_pc = distance_pc * np.radians(tidal_radius_arcmin / 60.0)
    dist = distance_pc + rng.normal(0.0, rt_pc / 3.0, n)
    sigma_pm = velocity_dispersion_kms / (K_KMS_PER_MASYR_KPC * distance_pc / 1000.0)
    mags = _apparent(sys_, dist, np.full(n, ebv))
    cols = _star_table(n)
    cols.update(ra=ras, dec=decs,
                pmra_masyr=pmra_masyr + rng.normal(0.0, sigma_pm, n),
                pmdec_masyr=pmdec_masyr + rng.normal(0.0, sigma_pm, n),
                parallax_mas=1000.0 / dist, **mags,
                is_member=np.ones(n, bool), is_binary=sys_["is_binary"],
                is_standard=np.zeros(n, bool), mass=sys_["mass"], mini=sys_["mini"],
                q=sys_["q"], distance_pc=dist, ebv=np.full(n, ebv))
    cols["field"][:] = name
    t = Table(cols)
    keep = (t["V"] <= faint_limit_v) & region.contains(t["ra"], t["dec"])
    return t[keep]


def sample_population(grid: IsochroneGrid, components: tuple[Component, ...], n: int,
                      rng: np.random.Generator, *, ebv_per_kpc: float, ebv_max: float,
                      binary_fraction: float, d_range_kpc: tuple[float, float] = (0.03, 15.0),
                      ) -> Table:
    """``n`` candidate field systems (no positions yet) from a mixture of components.

    Distances follow d² exp(-d/scale) within ``d_range_kpc`` and reddening grows linearly
    with distance, E(B-V) = min(ebv_per_kpc * d, ebv_max).

    Returns
    -------
    astropy.table.Table
        Columns as :func:`sample_cluster` without positions (``ra``, ``dec``).
    """
    w = np.array([c.weight for c in components])
    counts = rng.multinomial(n, w / w.sum())
    parts = []
    for comp, k in zip(components, counts, strict=True):
        if k == 0:
            continue
        sys_ = draw_systems(grid.isochrone(comp.log_age, comp.mh), int(k), rng, binary_fraction)
        m = len(sys_["mini"])
        d_kpc = rng.gamma(3.0, comp.scale_kpc, m)
        bad = (d_kpc < d_range_kpc[0]) | (d_kpc > d_range_kpc[1])
        d_kpc[bad] = rng.uniform(*d_range_kpc, int(bad.sum()))
        ebv = np.minimum(ebv_per_kpc * d_kpc, ebv_max)
        vra = rng.normal(comp.mean_v_kms[0], comp.sigma_kms, m)
        vdec = rng.normal(comp.mean_v_kms[1], comp.sigma_kms, m)
        cols = _star_table(m)
        cols.update(pmra_masyr=vra / (K_KMS_PER_MASYR_KPC * d_kpc),
                    pmdec_masyr=vdec / (K_KMS_PER_MASYR_KPC * d_kpc),
                    parallax_mas=1.0 / d_kpc,
                    **_apparent(sys_, d_kpc * 1000.0, ebv),
                    is_member=np.zeros(m, bool), is_binary=sys_["is_binary"],
                    is_standard=np.zeros(m, bool), mass=sys_["mass"], mini=sys_["mini"],
                    q=sys_["q"], distance_pc=d_kpc * 1000.0, ebv=ebv)
        parts.append(Table(cols))
    return vstack(parts) if parts else Table()


def sample_field(grid: IsochroneGrid, rng: np.random.Generator, *, region: SkyRegion,
                 density_arcmin2: float, faint_limit_v: float, ebv_per_kpc: float,
                 ebv_max: float, binary_fraction: float,
                 components: tuple[Component, ...] = FIELD_COMPONENTS) -> Table:
    """Field stars brighter than ``faint_limit_v``, uniform over ``region``.

    Parameters
    ----------
    grid : IsochroneGrid
        Isochrone grid.
    rng : numpy.random.Generator
        Random generator.
    region : SkyRegion
        Where the stars go.
    density_arcmin2 : float
        Stars per square arcminute brighter than ``faint_limit_v`` (Poisson-distributed count).
    faint_limit_v : float
        Faintest V kept.
    ebv_per_kpc, ebv_max : float
        Reddening law along the line of sight.
    binary_fraction : float
        Fraction of binaries.
    components : tuple of Component
        Populations mixed.

    Returns
    -------
    astropy.table.Table
        Field stars with positions, ``field`` set to the region name.
    """
    target = int(rng.poisson(density_arcmin2 * region.area_arcmin2))
    parts, have, batches = [], 0, 0
    while have < target:
        batches += 1
        if batches > 500:
            raise RuntimeError(f"cannot draw {target} field stars brighter than V={faint_limit_v}")
        cand = sample_population(grid, components, 20000, rng, ebv_per_kpc=ebv_per_kpc,
                                 ebv_max=ebv_max, binary_fraction=binary_fraction)
        cand = cand[cand["V"] <= faint_limit_v]
        cand = cand[: target - have]
        parts.append(cand)
        have += len(cand)
    t = vstack(parts) if parts else sample_population(
        grid, components, 1, rng, ebv_per_kpc=ebv_per_kpc, ebv_max=ebv_max,
        binary_fraction=binary_fraction)[:0]
    ra, dec = region.sample_uniform(len(t), rng)
    t["ra"], t["dec"] = ra, dec
    t["field"] = np.full(len(t), region.name, dtype="U16")
    return t


def choose_standards(grid: IsochroneGrid, rng: np.random.Generator, n: int, *,
                     v_range: tuple[float, float], bv_range: tuple[float, float]) -> Table:
    """``n`` single stars for a Landolt-like field, V in ``v_range``, B-V spread over ``bv_range``.

    Candidates come from :data:`STANDARD_COMPONENTS` at 30 pc - 6 kpc with little reddening;
    the B-V range is cut into ``n`` bins and one star is taken per bin where possible.

    Returns
    -------
    astropy.table.Table
        Standards without positions, sorted by B-V.
    """
    cand = sample_population(grid, STANDARD_COMPONENTS, 60000, rng, ebv_per_kpc=0.03,
                             ebv_max=0.06, binary_fraction=0.0, d_range_kpc=(0.03, 6.0))
    bv = cand["B"] - cand["V"]
    ok = ((cand["V"] >= v_range[0]) & (cand["V"] <= v_range[1])
          & (bv >= bv_range[0]) & (bv <= bv_range[1]) & np.isfinite(cand["U"]))
    cand, bv = cand[ok], bv[ok]
    edges = np.linspace(bv_range[0], bv_range[1], n + 1)
    chosen: list[int] = []
    for i in range(n):
        idx = np.flatnonzero((bv >= edges[i]) & (bv < edges[i + 1]))
        idx = np.setdiff1d(idx, chosen)
        if len(idx) == 0:
            idx = np.setdiff1d(np.arange(len(cand)), chosen)
        chosen.append(int(rng.choice(idx)))
    out = cand[np.array(chosen)]
    out = out[np.argsort(out["B"] - out["V"], kind="stable")]
    out["is_standard"] = True
    return out
