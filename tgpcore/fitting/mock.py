"""Mock cluster catalogues with known truth, for testing and benchmarking the fit.

Members come from the simulator's population (:func:`tgpcore.simulate.population.sample_cluster`:
Kroupa IMF, unresolved binaries with flat q, real extinction), field stars from its Galactic
field model (:func:`~tgpcore.simulate.population.sample_field`) in the same magnitude range,
and Gaia photometry from :func:`tgpcore.simulate.gaia.synthesize_gaia`. The catalogue then gets
photometric errors of a CCD (:class:`CCDErrorModel`) plus ``extra_scatter`` beyond the reported
errors (calibration, differential reddening), and is cut on the *measured* V, as a real
catalogue is; the reported error scatters by 10 % about the true one, U is missing where the
measured U is too faint for an error below ``u_max_error``, and membership
probabilities mimic what a membership stage leaves, and are calibrated (a star of probability p
is a member with probability p): p ~ Beta(a, b) with mean 1 - ``field_fraction``, members
following Beta(a + 1, b) (mostly > 0.8) and the field contaminants Beta(a, b + 1) (mean ~0.85:
those a membership stage cannot tell apart).

The isochrone of the members is either a grid node (the simulator's own behaviour) or, with
``interpolator`` given, the EEP-interpolated isochrone at exactly the requested (log age,
[M/H]) (:meth:`~tgpcore.isochrones.IsochroneInterpolator.as_grid`).

What real clusters do and a model grid does not, on request:

* ``extinction="colour"``: each member's extinction from its own colour and Teff
  (:class:`tgpcore.isochrones.reddening.ExtinctionModel`; a binary takes its primary's), as
  real broad-band extinction is, instead of the simulator's one coefficient per band;
* ``lower_ms_drift``: members cooler than ``drift_teff`` made redder than their isochrone by
  ``lower_ms_drift`` mag per 1000 K below it (added to B and U, and to BP), as PARSEC's lower
  main sequence is bluer than real K and M dwarfs (M67 in Gaia bands: ~0.05 mag per 1000 K
  below 5200 K, :mod:`tgpcore.fitting.ranges`);
* ``zero_point_offsets``: a calibration error common to all stars, per band.

Members drawn from another isochrone set than the one fitted (e.g. the CMD 3.3 files of
``shared/data/isochrones``) are the model mismatch that coverage tests need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table, vstack

from tgpcore.isochrones.grid import IsochroneGrid
from tgpcore.isochrones.interpolate import IsochroneInterpolator
from tgpcore.isochrones.reddening import ExtinctionModel
from tgpcore.simulate.gaia import synthesize_gaia
from tgpcore.simulate.population import sample_cluster, sample_field
from tgpcore.simulate.region import SkyRegion


@dataclass(frozen=True)
class CCDErrorModel:
    """Magnitude errors of CCD photometry: sigma^2 = floor^2 + s^2 10^(0.4 dm) + b^2 10^(0.8 dm),
    dm = m - m10, with m10 the magnitude where sigma = 0.1 (s^2 + b^2 = 0.01, 20 % photon
    noise of the star, 80 % sky there)."""

    m10: dict[str, float]
    floor: float = 0.006

    def sigma(self, band: str, mag: np.ndarray) -> np.ndarray:
        """1-sigma error (mag) at magnitude ``mag`` in ``band``."""
        x = np.asarray(mag, float) - self.m10[band]
        return np.sqrt(self.floor**2 + 0.002 * 10.0 ** (0.4 * x) + 0.008 * 10.0 ** (0.8 * x))


#: A 1-m class telescope's deep-ish U, B, V photometry.
DEFAULT_ERRORS = CCDErrorModel(m10={"U": 19.0, "B": 20.8, "V": 20.6})


@dataclass
class MockCluster:
    """A mock catalogue and its truth."""

    catalog: Table
    truth: dict


def mock_cluster(grid: IsochroneGrid, rng: np.random.Generator, *, log_age: float, mh: float,
                 dm: float, ebv: float, n_members: int = 600, binary_fraction: float = 0.3,
                 field_fraction: float = 0.08, v_limit: float = 20.0,
                 errors: CCDErrorModel = DEFAULT_ERRORS, u_max_error: float = 0.15,
                 extra_scatter: float = 0.015,
                 interpolator: IsochroneInterpolator | None = None,
                 gaia: bool = True, extinction: str = "constant",
                 lower_ms_drift: float = 0.0, drift_teff: float = 5200.0,
                 zero_point_offsets: dict[str, float] | None = None) -> MockCluster:
    """A cluster catalogue with U, B, V (and Gaia G, BP, RP), errors and membership weights.

    Parameters
    ----------
    grid : IsochroneGrid
        Isochrones of the simulator (members, unless ``interpolator`` is given, and the field).
    rng : numpy.random.Generator
        Random generator.
    log_age, mh, dm, ebv : float
        True log age, [M/H], distance modulus and E(B-V).
    n_members : int
        Members in the catalogue (brighter than ``v_limit``).
    binary_fraction : float
        Fraction of members that are unresolved binaries.
    field_fraction : float
        Expected fraction of field stars in the catalogue (the mean of 1 - p).
    v_limit : float
        Faintest V in the catalogue.
    errors : CCDErrorModel
        Photometric errors of U, B, V.
    u_max_error : float
        U is missing (NaN) where its error would exceed this.
    extra_scatter : float
        Scatter (mag) beyond the reported errors, independent per band and star: flat-field
        and zero-point errors, differential reddening, as real photometry has.
    interpolator : IsochroneInterpolator, optional
        Draw members from the interpolated isochrone at exactly (log_age, mh).
    gaia : bool
        Add Gaia G, BP, RP (synthetic DR3 errors).
    extinction : {'constant', 'colour'}
        The simulator's one coefficient per band, or each member's own (see the module
        docstring).
    lower_ms_drift, drift_teff : float
        Colour drift (mag per 1000 K) of members cooler than ``drift_teff`` (K).
    zero_point_offsets : dict, optional
        Offset (mag) added to every star's measured magnitude in a band (``U``, ``B``,
        ``V``, ``G``, ``BP``, ``RP``).

    Returns
    -------
    MockCluster
        ``catalog`` columns: ``source_id U B V U_err B_err V_err`` (+ ``phot_g_mean_mag``,
        ``phot_bp_mean_mag``, ``phot_rp_mean_mag`` and ``*_error``), ``p_member``,
        ``is_member``, ``is_binary``; ``truth`` holds the parameters actually used
        (grid node values when drawing from the grid).
    """
    if interpolator is not None:
        iso_grid = interpolator.as_grid(log_age, mh)
        true_age, true_mh = float(log_age), float(mh)
    else:
        iso_grid = grid
        true_age, true_mh = grid.nearest(log_age, mh)
    distance_pc = 10.0 ** (dm / 5.0 + 1.0)
    region = SkyRegion("mock", 180.0, 0.0, -1.0, 1.0, -1.0, 1.0)
    n_sys = max(4 * n_members, 2000)
    members = None
    colour_ext = extinction == "colour"
    if extinction not in ("constant", "colour"):
        raise ValueError(f"unknown extinction mode {extinction!r}")
    for _ in range(8):
        members = sample_cluster(
            iso_grid, rng, name="MOCK", ra=180.0, dec=0.0, log_age=true_age, mh=true_mh,
            distance_pc=distance_pc, ebv=0.0 if colour_ext else ebv, core_radius_arcmin=2.0,
            tidal_radius_arcmin=10.0, n_systems=n_sys, binary_fraction=binary_fraction,
            pmra_masyr=-1.0, pmdec_masyr=2.0, velocity_dispersion_kms=0.8,
            faint_limit_v=v_limit + 1.0 + (3.5 * ebv if colour_ext else 0.0), region=region)
        if colour_ext or lower_ms_drift:
            members = _perturb_members(members, iso_grid.isochrone(true_age, true_mh), ebv,
                                       colour_ext, lower_ms_drift, drift_teff)
            members = members[np.asarray(members["V"], float) <= v_limit + 1.0]
        if len(members) >= 2 * n_members:
            break
        n_sys = int(n_sys * 2.5 * n_members / max(len(members), 1)) + 100
    assert members is not None
    # a catalogue is cut on the *measured* V: observe first, then select
    v_obs = np.asarray(members["V"], float) + rng.normal(0.0, 1.0, len(members)) * np.hypot(
        errors.sigma("V", np.asarray(members["V"], float)), extra_scatter)
    members = members[v_obs <= v_limit]
    if len(members) < n_members:
        raise RuntimeError(f"could not draw {n_members} members brighter than V={v_limit}")
    pick = rng.choice(len(members), n_members, replace=False)
    noise_v = (v_obs[v_obs <= v_limit] - np.asarray(members["V"], float))[pick]
    members = members[pick]
    # calibrated membership probabilities: p ~ Beta(a, b) with mean 1 - field_fraction, and
    # a star with probability p is a member with probability p (members then follow
    # Beta(a + 1, b), field stars Beta(a, b + 1)); field stars number n_members * b / a
    a_p, b_p = 12.0 * (1.0 - field_fraction), 12.0 * field_fraction
    n_field = int(round(n_members * b_p / a_p))
    parts = [members]
    if n_field > 0:
        small = SkyRegion("mockfield", 180.0, 0.0, -0.05, 0.05, -0.05, 0.05)
        field = sample_field(grid, rng, region=small,
                             density_arcmin2=n_field / small.area_arcmin2,
                             faint_limit_v=v_limit, ebv_per_kpc=0.3,
                             ebv_max=max(1.5 * ebv, 0.1), binary_fraction=binary_fraction)
        v_lo = float(np.min(members["V"])) - 1.0
        field = field[(field["V"] >= v_lo) & (field["V"] <= v_limit)][:n_field]
        parts.append(field)
    stars = vstack(parts, metadata_conflicts="silent")
    n = len(stars)
    stars["star_id"] = np.arange(1, n + 1, dtype=np.int64)
    cat = Table()
    cat["source_id"] = stars["star_id"]
    for band in ("U", "B", "V"):
        true = np.asarray(stars[band], float)
        sig = errors.sigma(band, true)
        obs = true + rng.normal(0.0, 1.0, n) * np.hypot(sig, extra_scatter)
        if band == "V":  # the members' V noise drawn above decided their selection
            obs[: len(members)] = np.asarray(members["V"], float) + noise_v
        # the reported error follows the measured magnitude, as photometry software gives it
        rep = errors.sigma(band, obs) * rng.lognormal(0.0, 0.1, n)
        if band == "U":  # not detected where the measured U is too faint
            missing = (errors.sigma("U", obs) > u_max_error) | (sig > 2 * u_max_error)
            obs[missing], rep[missing] = np.nan, np.nan
        cat[band], cat[f"{band}_err"] = obs, rep
        cat[band].unit = cat[f"{band}_err"].unit = "mag"
    if gaia:
        g = synthesize_gaia(stars, rng, g_limit=30.0)
        for c in ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag"):
            cat[c] = np.asarray(g[c], float) + rng.normal(0.0, extra_scatter, n)
            cat[f"{c}_error"] = np.asarray(g[f"{c}_error"], float)
    gaia_cols = {"G": "phot_g_mean_mag", "BP": "phot_bp_mean_mag", "RP": "phot_rp_mean_mag"}
    for band, off in (zero_point_offsets or {}).items():
        col = gaia_cols.get(band, band)
        if col in cat.colnames:
            cat[col] = np.asarray(cat[col], float) + float(off)
    is_member = np.asarray(stars["is_member"], bool)
    p = np.where(is_member, rng.beta(a_p + 1.0, b_p, n), rng.beta(a_p, b_p + 1.0, n)) \
        if field_fraction > 0 else np.ones(n)
    cat["p_member"] = p
    cat["is_member"] = is_member
    cat["is_binary"] = np.asarray(stars["is_binary"], bool)
    truth = {"log_age": true_age, "mh": true_mh, "dm": float(dm), "ebv": float(ebv),
             "binary_fraction": float(binary_fraction), "extra_scatter": float(extra_scatter), "n_members": int(is_member.sum()),
             "n_field": int((~is_member).sum()),
             "isochrones": iso_grid.source,
             "drawn_from": "EEP-interpolated isochrone" if interpolator is not None
             else "nearest grid node", "extinction": extinction,
             "lower_ms_drift": float(lower_ms_drift), "drift_teff": float(drift_teff),
             "zero_point_offsets": dict(zero_point_offsets or {})}
    cat.meta["truth"] = truth
    return MockCluster(cat, truth)


def _perturb_members(members: Table, iso: Table, ebv: float, colour_ext: bool,
                     drift: float, drift_teff: float) -> Table:
    """Members with their own extinction (drawn unreddened) and the lower-main-sequence drift;
    Teff of each from its primary's initial mass on the isochrone."""
    t = members.copy()
    mini = np.asarray(t["mini"], float)
    logte = np.interp(mini, np.asarray(iso["Mini"], float), np.asarray(iso["logTe"], float))
    if colour_ext:
        bands = {"U": "U", "B": "B", "V": "V", "G": "G", "G_BP": "BP", "G_RP": "RP"}
        have = {b: c for b, c in bands.items() if c in t.colnames}
        model = ExtinctionModel(tuple(have))
        eep = {"logTe": logte}
        if "BP" in t.colnames and "RP" in t.colnames:
            eep["G_BP"] = np.asarray(t["BP"], float)
            eep["G_RP"] = np.asarray(t["RP"], float)
        coeff = model.coefficients(eep, ebv)
        for k, (_b, col) in enumerate(have.items()):
            t[col] = np.asarray(t[col], float) + coeff[:, k] * ebv
        t["ebv"] = np.full(len(t), ebv)
    if drift:
        d = drift * np.clip(drift_teff - 10.0**logte, 0.0, None) / 1000.0
        for col in ("B", "U", "BP"):
            if col in t.colnames:
                t[col] = np.asarray(t[col], float) + d
    return t
