"""The likelihood of a cluster's photometry given (log age, [M/H], distance modulus, E(B-V),
binary fraction).

Each star's observables y_i (anchor magnitude a_i, then the others c_i) are compared with the
model cluster of :mod:`tgpcore.fitting.synthetic` convolved with the star's errors plus an
intrinsic scatter s_int (a fitted nuisance parameter: calibration errors, differential
reddening; fixing it too large biases the distance, because the binaries' one-sided spread then
pulls the sequence up). The likelihood is *conditional on the anchor magnitude*,
p(c_i | a_i) = p(y_i) / p(a_i): the position of each star in colour at its own magnitude, not
the number of stars at each magnitude. It therefore does not depend on the luminosity function
of the sample, which a magnitude limit, incompleteness, mass segregation or a membership
selection distort, and needs no selection function.

Per star, with membership probability pi_i (the prior weight of the cluster) and the outlier
fraction f_o::

    L_i = pi_i [(1 - f_o) p_cl(c_i | a_i) + f_o p_f(c_i | a_i)] + (1 - pi_i) p_f(c_i | a_i)
    p_cl(c | a) = [S(y) + W(y)] / [S(a) + W(a) + floor]

where S and W are the sums over the sharp and the blurred model points (their weights carry
the binary fraction), and p_f a field density uniform in each colour over the observed range
(so contaminants and blue stragglers cost a fixed amount and do not drag the fit).
"""

from __future__ import annotations

import numpy as np

from tgpcore.fitting.binaries import BinaryTracks
from tgpcore.fitting.data import OBSERVABLES, ClusterPhotometry
from tgpcore.fitting.kernel import window_sums
from tgpcore.fitting.synthetic import ModelSettings, PointSet, build_points
from tgpcore.isochrones.interpolate import IsochroneInterpolator
from tgpcore.isochrones.reddening import ExtinctionModel

#: Parameter order of the likelihood's vector.
PARAMETER_NAMES: tuple[str, ...] = ("log_age", "mh", "dm", "ebv", "f_bin", "s_int")
#: The nuisance parameters among them: binary fraction and intrinsic scatter (mag).
NUISANCE: tuple[str, ...] = ("f_bin", "s_int")
_LOG_2PI = np.log(2.0 * np.pi)


class ClusterLikelihood:
    """log L(theta) of one cluster's photometry.

    Parameters
    ----------
    data : ClusterPhotometry
        The stars.
    interpolator : IsochroneInterpolator
        Isochrones (must carry every band the observables need).
    settings : ModelSettings, optional
        Model resolution, scatter, binary and outlier model.
    ratios : dict, optional
        Constant A_band / E(B-V) per band. By default the extinction of each isochrone point
        depends on its colour (:class:`tgpcore.isochrones.reddening.ExtinctionModel`, as
        ``settings`` says).
    """

    def __init__(self, data: ClusterPhotometry, interpolator: IsochroneInterpolator,
                 settings: ModelSettings | None = None,
                 ratios: dict[str, float] | None = None) -> None:
        # stars in anchor order: neighbouring stars visit overlapping windows of model points
        self._order = np.argsort(data.values[:, 0], kind="stable")
        self._unorder = np.argsort(self._order)
        self.data = data
        data = data.subset(self._order)
        self._sorted = data
        self.interp = interpolator
        self.settings = settings or ModelSettings()
        self.bands = data.bands
        missing = [b for b in self.bands if b not in interpolator.bands]
        if missing:
            raise KeyError(f"the isochrones lack bands {missing} needed by {data.names}")
        self.design = data.design_matrix()
        self.extinction = self._extinction_model(interpolator)
        if ratios is not None:
            self.extinction = None
            self.ratios = np.array([ratios[b] for b in self.bands])
        else:
            #: constant coefficients (hot star): the template seeds' translation per E(B-V)
            self.ratios = self.extinction.constant
        present = np.isfinite(data.values)
        self.present = present
        self.y = np.where(present, data.values, 0.0)
        self.err2 = np.where(present, data.errors, 0.0) ** 2
        self._prec_cache: tuple[float, tuple] | None = None
        self.log_field = self._field_density(present)
        self.p_member = data.p_member
        a = data.values[:, 0]
        self.anchor_range = (float(np.min(a)), float(np.max(a)))
        self.n_calls = 0
        self.binaries = BinaryTracks(
            interpolator, self._anchor_band(), q_min=self.settings.q_min,
            sharp_step=self.settings.binary_sharp_step,
            sharp_max=self.settings.binary_sharp_max,
            wide_step=self.settings.binary_wide_step)

    def _extinction_model(self, interpolator: IsochroneInterpolator) -> ExtinctionModel:
        s = self.settings
        model = ExtinctionModel(self.bands, law=s.extinction_law, rv=s.extinction_rv,
                                colour_dependent=s.colour_dependent_extinction,
                                gaia=s.gaia_extinction)
        if model.needs_gaia_colour and not {"G_BP", "G_RP"} <= set(interpolator.bands):
            model = ExtinctionModel(self.bands, law=s.extinction_law, rv=s.extinction_rv,
                                    colour_dependent=True, gaia="bandpass")
        return model

    def coefficients(self, eep: dict[str, np.ndarray], ebv: float) -> np.ndarray:
        """A_band / E(B-V) of the isochrone points ``eep`` (or the constant vector)."""
        if self.extinction is None:
            return self.ratios
        return self.extinction.coefficients(eep, ebv)

    def precisions(self, s_int: float) -> tuple:
        """Per-star precisions, window half-widths and log normalisations for an intrinsic
        scatter ``s_int`` (mag; never below the model's resolution, ``settings.
        intrinsic_scatter``)."""
        s_int = max(float(s_int), self.settings.intrinsic_scatter)
        if self._prec_cache is not None and self._prec_cache[0] == s_int:
            return self._prec_cache[1]
        var = self.err2 + s_int**2
        prec_s = np.where(self.present, 1.0 / var, 0.0)
        prec_b = np.where(self.present, 1.0 / (var + self.settings.binary_blur**2), 0.0)
        hw_s = self.settings.window_sigma / np.sqrt(prec_s[:, 0])
        hw_b = self.settings.window_sigma / np.sqrt(prec_b[:, 0])

        def lognorm(prec: np.ndarray) -> np.ndarray:
            return 0.5 * np.where(prec > 0, np.log(np.where(prec > 0, prec, 1.0)) - _LOG_2PI,
                                  0.0)

        out = (prec_s, prec_b, hw_s, hw_b, lognorm(prec_s).sum(axis=1),
               lognorm(prec_s[:, :1])[:, 0], lognorm(prec_b).sum(axis=1),
               lognorm(prec_b[:, :1])[:, 0])
        self._prec_cache = (s_int, out)
        return out

    def _anchor_band(self) -> str:
        """The isochrone band of the anchor observable."""
        (band,) = OBSERVABLES[self.data.anchor]
        return band

    def _field_density(self, present: np.ndarray) -> np.ndarray:
        """log p_f(c | a): uniform in each colour (observable minus anchor for magnitudes)
        over the observed range, widened by half its span."""
        d = self._sorted
        colour = d.is_colour()
        logp = np.zeros(d.n_stars)
        self.field_ranges = {}
        for j in range(1, len(d.names)):
            x = d.values[:, j] if colour[j] else d.values[:, j] - d.values[:, 0]
            ok = present[:, j]
            if not ok.any():
                continue
            lo, hi = np.percentile(x[ok], [0.5, 99.5])
            span = max(1.5 * (hi - lo), 1.0)
            self.field_ranges[d.names[j]] = span
            logp -= np.where(ok, np.log(span), 0.0)
        return logp

    def model_points(self, log_age: float, mh: float, dm: float, ebv: float,
                     f_bin: float = 0.3) -> tuple[PointSet, PointSet]:
        """The model cluster's sharp and blurred point sets for these parameters, weights
        normalised to one system per unit anchor range... (see
        :func:`~tgpcore.fitting.synthetic.build_points`)."""
        eep = self.interp.eep_arrays(log_age, mh)
        tracks = self.binaries.tracks(log_age, mh) if f_bin > 0 else None
        sharp, wide = build_points(eep, self.bands, self.design, self.coefficients(eep, ebv),
                                   dm, ebv,
                                   self.anchor_range, self.settings, f_bin, tracks,
                                   self.binaries.is_wide)
        lo, hi = self.anchor_range
        norm = (sharp.weight[(sharp.obs[:, 0] >= lo) & (sharp.obs[:, 0] <= hi)].sum()
                + wide.weight[(wide.obs[:, 0] >= lo) & (wide.obs[:, 0] <= hi)].sum())
        if norm <= 0:
            norm = sharp.weight.sum() + wide.weight.sum()
        if norm > 0:
            sharp.weight = sharp.weight / norm
            wide.weight = wide.weight / norm
        return sharp, wide

    def star_terms(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Per-star pieces of the likelihood.

        Returns
        -------
        dict
            ``log_cl`` (log p_cl(c|a)), ``log_field`` (log p_f(c|a)), ``log_like`` (log L_i),
            ``p_cluster`` (posterior probability that the star follows the isochrone),
            ``p_binary`` (that it does so as a binary with q >= q_narrow).
        """
        log_age, mh, dm, ebv, f_bin, s_int = (float(v) for v in theta)
        s = self.settings
        prec_s, prec_b, hw_s, hw_b, ln_sf, ln_sa, ln_bf, ln_ba = self.precisions(s_int)
        sharp, wide = self.model_points(log_age, mh, dm, ebv, f_bin)
        sf, sa = window_sums(self.y, prec_s, hw_s, sharp.obs, sharp.weight)
        bf, ba = window_sums(self.y, prec_b, hw_b, wide.obs, wide.weight)
        num_s = sf * np.exp(ln_sf)
        num_b = bf * np.exp(ln_bf)
        den = sa * np.exp(ln_sa) + ba * np.exp(ln_ba) + s.lf_floor
        with np.errstate(divide="ignore"):
            log_cl = np.log(num_s + num_b) - np.log(den)
        pf = np.exp(self.log_field)
        pcl = np.exp(log_cl)
        w_cl = self.p_member * (1.0 - s.outlier_fraction)
        like = w_cl * pcl + (1.0 - w_cl) * pf
        with np.errstate(divide="ignore", invalid="ignore"):
            p_cluster = np.where(like > 0, w_cl * pcl / like, 0.0)
            p_binary = np.where(num_s + num_b > 0, p_cluster * num_b / (num_s + num_b), 0.0)
        u = self._unorder
        return {"log_cl": log_cl[u], "log_field": self.log_field[u], "log_like": np.log(like)[u],
                "p_cluster": p_cluster[u], "p_binary": p_binary[u]}

    def __call__(self, theta: np.ndarray) -> float:
        """log L for theta = (log_age, mh, dm, ebv, f_bin, s_int)."""
        self.n_calls += 1
        ll = self.star_terms(theta)["log_like"]  # order irrelevant for the sum
        total = float(np.sum(ll))
        return total if np.isfinite(total) else -np.inf
