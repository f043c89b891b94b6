"""Where the models and the data are trusted: the magnitude range a fit uses.

Two limits, both at the faint end:

* **The models' range.** Isochrones describe cool dwarfs badly. In Gaia's bands the PARSEC
  lower main sequence is too blue: M67's members (the shared Gaia DR3 cone) sit on the
  isochrone to within 0.01 mag in BP-RP down to Teff ~ 5200 K (G ~ 15.5), then drift redwards
  of it, by 0.03 mag at 4800 K, 0.05 mag at 4500 K and 0.06-0.1 mag at 4000 K (measured
  against the bright-star solution; :func:`main_sequence_residuals`). Hundreds of such stars,
  each 3-10 sigma off, outvote the turn-off and pull [M/H], the age and the distance (M67:
  0.2 dex, 0.1 dex and 0.2 mag). So stars fainter than the main-sequence point where the
  fitted isochrone reaches ``teff_min`` (5000 K by default) are not fitted. The limit is
  set in the model's own terms, so it does not depend on how deep the catalogue goes; it is
  turned into an apparent anchor magnitude on the global search's best isochrone, once.
* **The data's range.** Gaia DR3 BP and RP fluxes of faint sources are biased by the
  background (Riello et al. 2021, Sect. 8): at G > 19 the colours of M67's members scatter
  and drift bluewards by 0.2-0.9 mag. A Gaia colour is not used fainter than G = 19.

Stars the models cannot describe inside the range (blue stragglers, white dwarfs if any,
non-members with high weights) are left to the outlier component of the likelihood.
"""

from __future__ import annotations

import numpy as np

from tgpcore.fitting.data import ClusterPhotometry
from tgpcore.isochrones.interpolate import IsochroneInterpolator
from tgpcore.isochrones.reddening import ExtinctionModel

#: Coolest main-sequence point (K) whose colours the fit trusts by default.
TRUSTED_TEFF_MIN = 5000.0
#: The alternative limits of the systematic error budget: a brighter and a fainter end.
TEFF_MIN_VARIANTS = {"bright": 5600.0, "extended": 4500.0}
#: Faintest G at which Gaia BP and RP are used.
GAIA_COLOUR_G_MAX = 19.0
_GAIA_COLOURS = ("BP", "RP", "BP-RP")


def model_anchor_limit(interp: IsochroneInterpolator, bands: tuple[str, ...],
                       design: np.ndarray, extinction: ExtinctionModel | np.ndarray,
                       theta: np.ndarray, teff_min: float) -> float:
    """Apparent anchor magnitude below which the main sequence is cooler than ``teff_min``.

    Parameters
    ----------
    interp : IsochroneInterpolator
        Isochrones.
    bands, design
        Bands and observable coefficients of the fit (anchor first).
    extinction : ExtinctionModel or ndarray
        Extinction coefficients (a model, or a constant vector per band).
    theta : ndarray
        (log age, [M/H], dm, E(B-V), ...).
    teff_min : float
        Coolest trusted effective temperature (K).

    Returns
    -------
    float
        The brightest anchor magnitude of a main-sequence (or pre-main-sequence) point cooler
        than ``teff_min``; ``inf`` if the isochrone has none.
    """
    log_age, mh, dm, ebv = (float(v) for v in theta[:4])
    eep = interp.eep_arrays(log_age, mh)
    coeff = extinction.coefficients(eep, ebv) if isinstance(extinction, ExtinctionModel) \
        else np.asarray(extinction, float)
    mags = np.column_stack([eep[b] for b in bands]) + dm + coeff * ebv
    anchor = mags @ design[0]
    cool = (eep["label"] <= 1) & (10.0 ** eep["logTe"] < teff_min) & np.isfinite(anchor)
    if not cool.any():
        return float("inf")
    return float(np.min(anchor[cool]))


def cut_faint(data: ClusterPhotometry, anchor_max: float, why: str) -> ClusterPhotometry:
    """The stars no fainter than ``anchor_max`` in the anchor, with a note saying why."""
    keep = data.values[:, 0] <= anchor_max
    out = data.subset(np.flatnonzero(keep))
    n_out = int((~keep).sum())
    if n_out:
        out.notes.append(f"{n_out} stars fainter than {data.anchor} = {anchor_max:.2f} not "
                         f"fitted ({why})")
    return out


def gaia_colour_limit(data: ClusterPhotometry, g_max: float = GAIA_COLOUR_G_MAX
                      ) -> ClusterPhotometry:
    """Drop Gaia BP/RP observables fainter than G = ``g_max`` (then stars left without a
    colour), with a note."""
    if "G" not in data.names or not any(o in data.names for o in _GAIA_COLOURS):
        return data
    g = data.values[:, data.names.index("G")]
    faint = g > g_max
    if not faint.any():
        return data
    values, errors = data.values.copy(), data.errors.copy()
    for j, o in enumerate(data.names):
        if o in _GAIA_COLOURS:
            values[faint, j] = np.nan
            errors[faint, j] = np.nan
    keep = np.isfinite(values[:, 0]) & np.isfinite(values[:, 1:]).any(axis=1)
    out = ClusterPhotometry(data.names, values[keep], errors[keep], data.p_member[keep],
                            None if data.ids is None else data.ids[keep], data.source,
                            list(data.notes), dict(data.zero_point_sigma))
    out.notes.append(f"Gaia BP/RP not used at G > {g_max:g} (background-biased fluxes, Riello "
                     f"et al. 2021): {int(faint.sum())} stars"
                     + (f", {int((~keep).sum())} of them left without a colour and dropped"
                        if (~keep).any() else ""))
    return out


def main_sequence_residuals(data: ClusterPhotometry, interp: IsochroneInterpolator,
                            bands: tuple[str, ...], design: np.ndarray,
                            extinction: ExtinctionModel | np.ndarray, theta: np.ndarray,
                            colour: np.ndarray, bin_width: float = 0.5, p_min: float = 0.9
                            ) -> list[dict[str, float]]:
    """Colour residuals of likely members against the isochrone's main sequence, by anchor
    magnitude (the diagnostic behind :data:`TRUSTED_TEFF_MIN`).

    Parameters
    ----------
    colour : ndarray
        Coefficients over the observables of the colour to examine (e.g. BP-RP).

    Returns
    -------
    list of dict
        Per bin: ``anchor`` (bin centre), ``teff`` (isochrone Teff there), ``n``,
        ``median`` and ``median_blue`` (median of the bluest 60 %, which binaries avoid).
    """
    log_age, mh, dm, ebv = (float(v) for v in theta[:4])
    eep = interp.eep_arrays(log_age, mh)
    coeff = extinction.coefficients(eep, ebv) if isinstance(extinction, ExtinctionModel) \
        else np.asarray(extinction, float)
    obs = (np.column_stack([eep[b] for b in bands]) + dm + coeff * ebv) @ design.T
    ms = eep["label"] == 1
    a_m, c_m, t_m = obs[ms, 0], obs[ms] @ colour, 10.0 ** eep["logTe"][ms]
    order = np.argsort(a_m)
    a_m, c_m, t_m = a_m[order], c_m[order], t_m[order]
    vals = np.nan_to_num(data.values)
    ok = (data.p_member >= p_min) & np.all(np.isfinite(data.values[:, colour != 0]), axis=1) \
        & (data.values[:, 0] >= a_m.min()) & (data.values[:, 0] <= a_m.max())
    a, c = vals[ok, 0], vals[ok] @ colour
    res = c - np.interp(a, a_m, c_m)
    out = []
    if not ok.any():
        return out
    for lo in np.arange(np.floor(a.min()), a.max(), bin_width):
        s = (a >= lo) & (a < lo + bin_width)
        if s.sum() < 5:
            continue
        r = np.sort(res[s])
        centre = lo + bin_width / 2
        out.append({"anchor": float(centre), "teff": float(np.interp(centre, a_m, t_m)),
                    "n": int(s.sum()), "median": float(np.median(r)),
                    "median_blue": float(np.median(r[: max(1, int(0.6 * len(r)))]))})
    return out
