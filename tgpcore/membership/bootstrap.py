"""Bootstrap uncertainties of the cluster centroid and intrinsic dispersion.

Each resample draws N stars with replacement from the fitted stars and refits the mixture,
starting from the best fit. To keep this cheap the field components' shapes are held at their
best-fit values (their mixing fractions, the cluster component and the Plummer scale are
refitted), and only stars that could matter to the cluster (best-fit membership probability
above 1e-6) are carried through the cluster's EM updates; the rest enter only through their
counts. The field is fitted to thousands of stars, so its shape's own scatter moves the
cluster centroid far less than the cluster stars' scatter does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tgpcore.membership.mixture import MixtureModel, field_loglikes, fit_mixture

BOOTSTRAP_METHOD = ("bootstrap over stars ({n} resamples; field shapes held at the best fit, "
                    "cluster component, mixing fractions and Plummer scale refitted)")


@dataclass
class BootstrapResult:
    """Resampled fits of the cluster component.

    Attributes
    ----------
    means : ndarray, shape (B, 3)
        Cluster centroid (pmra, pmdec, parallax) of each resample.
    dispersions : ndarray, shape (B, 3)
        Intrinsic dispersions (square roots of the covariance diagonal).
    n_members : ndarray, shape (B,)
        Cluster weight times the number of fitted stars.
    method : str
        Description for the output.
    """

    means: np.ndarray
    dispersions: np.ndarray
    n_members: np.ndarray
    method: str

    def std(self) -> dict[str, np.ndarray]:
        """Standard deviations over the resamples."""
        return {"mean": self.means.std(0, ddof=1), "dispersion": self.dispersions.std(0, ddof=1),
                "n_members": float(self.n_members.std(ddof=1))}


def bootstrap_centroid(model: MixtureModel, x: np.ndarray, cov: np.ndarray, r: np.ndarray,
                       p_best: np.ndarray, n_boot: int, rng: np.random.Generator, *,
                       use_position: bool = True, max_iter: int = 60) -> BootstrapResult:
    """Refit the cluster component on ``n_boot`` resamples of the fitted stars.

    Parameters
    ----------
    model : MixtureModel
        The best fit.
    x, cov, r : ndarray
        The fitted stars (as given to :func:`tgpcore.membership.mixture.fit_mixture`).
    p_best : ndarray
        Their best-fit cluster probabilities (chooses the stars carried through the updates).
    n_boot : int
        Number of resamples (at least 2).
    rng : numpy.random.Generator
        Random generator.
    use_position : bool
        As in the fit.
    max_iter : int
        Iteration cap of each refit.

    Returns
    -------
    BootstrapResult
    """
    n = len(x)
    rel = np.flatnonzero(p_best > 1e-6)
    far = np.setdiff1d(np.arange(n), rel)
    xr, cr, rr = x[rel], cov[rel], r[rel]
    fl = field_loglikes(model, xr, cr)
    means, disp, nm = [], [], []
    for _ in range(max(2, n_boot)):
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        w = counts[rel].astype(float)
        n_far = counts[far].sum()
        # Stars far from the cluster carry (almost) no cluster responsibility: they only
        # dilute the cluster's mixing fraction, which is rescaled for them below.
        fit = fit_mixture(xr, cr, rr, model, use_position=use_position, max_iter=max_iter,
                          tol=1e-6, sample_weight=w, fixed_field=True, field_loglike=fl)
        tot = w.sum() + n_far
        wc = fit.weights[0] * w.sum() / tot
        means.append(fit.means[0])
        disp.append(np.sqrt(np.diag(fit.covs[0])))
        nm.append(wc * n)
    return BootstrapResult(np.array(means), np.array(disp), np.array(nm),
                           BOOTSTRAP_METHOD.format(n=max(2, n_boot)))
