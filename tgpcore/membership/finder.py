"""The membership stage as one function: quality cuts, KDE centroid, mixture, bootstrap, King.

>>> result = find_members(gaia_table, centre=(132.85, 11.81), radius_deg=0.7)  # doctest: +SKIP
>>> result.summary()["centroid"]["pmra_masyr"]                                   # doctest: +SKIP

A cone without a significant proper-motion overdensity gives ``status == "no_cluster"``, every
probability 0, and no centroid: nothing is invented.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from astropy.table import Table

from tgpcore.membership.bootstrap import BootstrapResult, bootstrap_centroid
from tgpcore.membership.kde import KDEDetection, NoOverdensityError, detect_cluster
from tgpcore.membership.king import KingFit, fit_king
from tgpcore.membership.mixture import (
    MixtureModel,
    fit_mixture,
    initial_model,
    membership_probabilities,
)
from tgpcore.membership.quality import QualityCuts, quality_mask
from tgpcore.membership.sample import AstrometricSample, build_sample

MIXTURE_METHOD = ("extreme-deconvolution Gaussian mixture in (pmra, pmdec, parallax): one "
                  "cluster + {n_field} field components, each convolved with every star's error "
                  "covariance{pos}; EM (Bovy, Hogg & Roweis 2011)")
#: Largest intrinsic proper-motion dispersion (mas/yr) still called a cluster, as a fraction
#: of the narrowest field component's.
MAX_DISPERSION_RATIO = 0.35


@dataclass(frozen=True)
class MembershipConfig:
    """Knobs of :func:`find_members`.

    Attributes
    ----------
    cuts : QualityCuts
        Which stars enter the fit.
    n_field : int
        Field Gaussians in the mixture (1-3).
    use_position : bool
        Include the sky-position term (Plummer cluster, uniform field).
    n_boot : int
        Bootstrap resamples for the centroid uncertainties.
    n_boot_king : int
        Bootstrap resamples for the King-profile uncertainties.
    min_significance, min_excess : float
        Overdensity thresholds of the KDE detection.
    king_p_min : float
        Kinematic probability above which a quality star counts for the radial profile.
    seed : int
        Seed of the bootstrap generators (results are reproducible).
    """

    cuts: QualityCuts = field(default_factory=QualityCuts)
    n_field: int = 3
    use_position: bool = True
    n_boot: int = 100
    n_boot_king: int = 50
    min_significance: float = 5.0
    min_excess: float = 10.0
    king_p_min: float = 0.5
    seed: int = 0

    def to_dict(self) -> dict:
        """Plain data."""
        return asdict(self)


@dataclass
class MembershipResult:
    """Everything the membership stage found.

    Attributes
    ----------
    status : str
        ``"ok"`` or ``"no_cluster"``.
    message : str
        One line for humans.
    members : astropy.table.Table
        One row per input star: ``source_id``, ``ra``, ``dec``, ``pmra``, ``pmdec``,
        ``parallax``, ``phot_g_mean_mag``, ``bp_rp`` (if present), ``r_arcmin``, ``p_member``,
        ``p_kinematic`` (NaN without astrometry) and ``quality_ok``.
    sample : AstrometricSample
        The arrays the analysis used.
    quality : dict
        What the cuts removed.
    detection : KDEDetection or None
        The KDE centroid (``None`` if there was no overdensity).
    model : MixtureModel or None
        The fitted mixture.
    bootstrap : BootstrapResult or None
        Resampled cluster fits.
    king : KingFit or None
        The radial profile (``None`` if it could not be fitted; see ``king_message``).
    king_message : str
        Why the King fit is missing, if it is.
    config : MembershipConfig
        Settings used.
    """

    status: str
    message: str
    members: Table
    sample: AstrometricSample
    quality: dict
    config: MembershipConfig
    detection: KDEDetection | None = None
    model: MixtureModel | None = None
    bootstrap: BootstrapResult | None = None
    king: KingFit | None = None
    king_message: str = ""

    def counts(self) -> dict[str, int]:
        """Stars in, with astrometry, passing the cuts, and members at p > 0.5 and p > 0.9."""
        p = np.nan_to_num(np.asarray(self.members["p_member"], float), nan=0.0)
        q = np.asarray(self.members["quality_ok"], bool)
        return {"n_input": len(self.members),
                "n_astrometric": int(self.sample.has_astrometry.sum()),
                "n_quality": int(q.sum()),
                "n_members_p50": int(((p > 0.5) & q).sum()),
                "n_members_p90": int(((p > 0.9) & q).sum()),
                "n_members_p50_all": int((p > 0.5).sum()),
                "n_members_p90_all": int((p > 0.9).sum()),
                "n_members_expected": float(np.nansum(np.where(q, p, 0.0)))}

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: centroid with errors, counts, King radii with errors, methods."""
        s = self.sample
        out: dict[str, Any] = {
            "status": self.status, "message": self.message,
            "cone": {"ra_deg": s.ra0, "dec_deg": s.dec0, "radius_arcmin": s.radius_arcmin},
            "counts": self.counts(), "quality_cuts": {**self.config.cuts.to_dict(),
                                                      "removed": self.quality},
            "errors_estimated": s.errors_estimated,
            "centroid": None, "intrinsic_dispersion": None, "kde": None, "king": None,
        }
        if s.errors_estimated:
            out["errors_note"] = ("the input lacks some astrometric errors; typical Gaia "
                                  "(E)DR3 errors at each star's G were used "
                                  "(tgpcore.catalogs.precision)")
        if self.detection is not None:
            out["kde"] = self.detection.to_dict()
        if self.model is not None and self.bootstrap is not None:
            m, sd = self.model, self.bootstrap.std()
            names = ("pmra_masyr", "pmdec_masyr", "parallax_mas")
            pos = "" if not self.config.use_position else (
                f"; sky term: Plummer cluster (a = {m.plummer_a_arcmin:.2f} arcmin) over a uniform field")
            method = (MIXTURE_METHOD.format(n_field=len(m.weights) - 1, pos=pos)
                      + "; errors: " + self.bootstrap.method)
            out["centroid"] = {**{n: float(m.means[0][i]) for i, n in enumerate(names)},
                               **{n.replace("_mas", "_err_mas"): float(sd["mean"][i])
                                  for i, n in enumerate(names)},
                               "method": method}
            disp = np.sqrt(np.diag(m.covs[0]))
            out["intrinsic_dispersion"] = {
                **{n: float(disp[i]) for i, n in enumerate(names)},
                **{n.replace("_mas", "_err_mas"): float(sd["dispersion"][i])
                   for i, n in enumerate(names)},
                "method": method}
            out["mixture"] = {"weights": [float(w) for w in m.weights],
                              "n_iter": m.n_iter, "converged": m.converged,
                              "loglike": float(m.loglike),
                              "n_cluster_fit": float(m.weights[0] * out["counts"]["n_quality"])}
        if self.king is not None:
            out["king"] = self.king.to_dict()
        elif self.status == "ok":
            out["king"] = None
            out["king_message"] = self.king_message
        return out


def _members_table(sample: AstrometricSample, p: np.ndarray, pk: np.ndarray,
                   q: np.ndarray) -> Table:
    t = sample.table
    out = Table()
    out["source_id"] = t["source_id"]
    for name in ("ra", "dec", "pmra", "pmdec", "parallax", "phot_g_mean_mag", "bp_rp"):
        if name in t.colnames:
            out[name] = t[name]
    out["r_arcmin"] = sample.r
    out["r_arcmin"].unit = "arcmin"
    out["p_member"] = p
    out["p_kinematic"] = pk
    out["quality_ok"] = q
    out["p_member"].description = "cluster membership probability (mixture, with sky term)"
    out["p_kinematic"].description = "membership probability from the astrometry alone"
    out["quality_ok"].description = "passed the quality cuts and entered the fit"
    return out


def find_members(table: Table, centre: tuple[float, float] | None = None,
                 radius_deg: float | None = None, config: MembershipConfig | None = None,
                 source: str = "table") -> MembershipResult:
    """Find a cluster's members in a Gaia-like table.

    Parameters
    ----------
    table : astropy.table.Table
        Gaia-like table (see :mod:`tgpcore.catalogs.columns` for accepted names).
    centre : (float, float), optional
        Cone centre (ra, dec) in degrees; the table's mean position by default.
    radius_deg : float, optional
        Cone radius in degrees; the largest distance of a star from the centre by default.
    config : MembershipConfig, optional
        Settings.
    source : str
        Name of the input (for error messages).

    Returns
    -------
    MembershipResult
        ``status == "no_cluster"`` if the KDE finds no significant overdensity or the mixture's
        cluster component is as broad as the field.

    Raises
    ------
    tgpcore.catalogs.columns.MissingColumnError
        If the table lacks a required column.
    """
    cfg = config or MembershipConfig()
    s = build_sample(table, centre, radius_deg, source)
    q, qrep = quality_mask(s, cfg.cuts)
    q &= s.r <= s.radius_arcmin

    def no_cluster(msg: str, det: KDEDetection | None = None) -> MembershipResult:
        zeros = np.where(s.has_astrometry, 0.0, np.nan)
        return MembershipResult("no_cluster", msg, _members_table(s, zeros, zeros, q), s, qrep,
                                cfg, detection=det)

    try:
        det = detect_cluster(s.x[q, :2], s.x[q, 2], np.sqrt(s.cov[q, 2, 2]), s.r[q],
                             s.radius_arcmin, min_significance=cfg.min_significance,
                             min_excess=cfg.min_excess)
    except NoOverdensityError as exc:
        return no_cluster(str(exc))
    xq, cq, rq = s.x[q], s.cov[q], s.r[q]
    init = initial_model(xq, (det.pmra_masyr, det.pmdec_masyr, det.parallax_mas),
                         2.0 * det.n_excess, s.radius_arcmin, det.inner_radius_arcmin / 2.0,
                         n_field=cfg.n_field)
    model = fit_mixture(xq, cq, rq, init, use_position=cfg.use_position)
    disp = np.sqrt(np.diag(model.covs[0])[:2]).max()
    field_disp = min(np.sqrt(np.diag(model.covs[j])[:2]).min() for j in range(1, cfg.n_field + 1))
    if model.weights[0] * len(xq) < cfg.min_excess or disp > MAX_DISPERSION_RATIO * field_disp:
        return no_cluster(
            f"no significant overdensity: the mixture's cluster component ({model.weights[0] * len(xq):.0f} "
            f"stars, proper-motion dispersion {disp:.2f} mas/yr) is not distinct from the field "
            f"({field_disp:.2f} mas/yr)", det)
    p = membership_probabilities(model, s.x, s.cov, s.r, cfg.use_position)
    pk = membership_probabilities(model, s.x, s.cov, s.r, use_position=False)
    boot = bootstrap_centroid(model, xq, cq, rq, p[q], cfg.n_boot,
                              np.random.default_rng(cfg.seed), use_position=cfg.use_position)
    members = _members_table(s, p, pk, q)
    result = MembershipResult("ok", "", members, s, qrep, cfg, detection=det, model=model,
                              bootstrap=boot)
    kin = s.has_astrometry & (np.nan_to_num(pk) > cfg.king_p_min)
    try:
        result.king = fit_king(s.xi[kin], s.eta[kin], s.radius_arcmin, s.ra0, s.dec0,
                               n_boot=cfg.n_boot_king,
                               rng=np.random.default_rng(cfg.seed + 1))
    except (ValueError, RuntimeError) as exc:
        result.king_message = f"King profile not fitted: {exc}"
    c = result.counts()
    result.message = (f"cluster found: pm = ({model.means[0][0]:.3f}, {model.means[0][1]:.3f}) "
                      f"mas/yr, parallax = {model.means[0][2]:.4f} mas; "
                      f"{c['n_members_p50']} members at p > 0.5, {c['n_members_p90']} at p > 0.9")
    return result
