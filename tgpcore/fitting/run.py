"""One cluster catalogue in, the fit's products out: ``fit.json``, ``fit.h5`` and figures.

This is what ``tgp fit`` and the full run's isochrone-fit stage do, as a plain function (usable
from a notebook).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from astropy.table import Table

from tgpcore.fitting.data import (
    MATCH_RADIUS_ARCSEC,
    PROB_ALIASES,
    _find,
    match_members,
    photometry_from_table,
    read_table,
)
from tgpcore.fitting.fit import FitSettings, fit_cluster
from tgpcore.fitting.parallax import PARALLAX_ALIASES, cluster_parallax_prior
from tgpcore.fitting.priors import dm_prior_from_parallax, parse_prior
from tgpcore.fitting.synthetic import ModelSettings
from tgpcore.io.checksum import sha256_file
from tgpcore.isochrones.interpolate import IsochroneInterpolator
from tgpcore.isochrones.store import load_grid
from tgpcore.plots.isochrones import fit_figures

FIT_JSON = "fit.json"
FIT_H5 = "fit.h5"


def parallax_table(catalog: Table, members: Table | None,
                   match_radius_arcsec: float = MATCH_RADIUS_ARCSEC) -> Table | None:
    """The table the parallax prior is computed from: the member list if it has parallaxes,
    else the catalogue's parallaxes with the members' probabilities (joined) or its own
    probability column; None when neither has parallaxes."""
    if members is not None and _find(members.colnames, PARALLAX_ALIASES):
        return members
    if _find(catalog.colnames, PARALLAX_ALIASES) is None:
        return None
    t = catalog.copy(copy_data=False)
    if members is not None:
        p, _ = match_members(catalog, members, radius_arcsec=match_radius_arcsec)
        pcol = _find(t.colnames, PROB_ALIASES)
        if pcol:
            t.remove_column(pcol)
        t["p_member"] = p
    elif _find(t.colnames, PROB_ALIASES) is None:
        return None  # no way to tell members from the field
    return t


def resolve_parallax_prior(catalog: Table, members: Table | None,
                           parallax: tuple[float, float] | None, mode: str,
                           has_dm_prior: bool, match_radius_arcsec: float = MATCH_RADIUS_ARCSEC
                           ) -> tuple[Any, dict[str, Any]]:
    """The distance-modulus prior from parallaxes, and what fit.json says about it.

    ``mode`` is ``auto`` (the members' parallaxes when known), ``off``; an explicit
    ``parallax`` (mas, error) wins; a user's own prior on (or fixed) dm disables it.
    """
    if parallax is not None:
        pr = dm_prior_from_parallax(*parallax)
        return pr, {"used": True, "source": "given by the user", "parallax_mas": parallax[0],
                    "error_mas": parallax[1], "zero_point_mas": -0.017,
                    "dm_prior": {"mu": pr.mu, "sigma": pr.sigma}}
    if mode == "off":
        return None, {"used": False, "reason": "switched off"}
    if has_dm_prior:
        return None, {"used": False, "reason": "a prior on (or a fixed) distance modulus "
                                                "was given"}
    t = parallax_table(catalog, members, match_radius_arcsec)
    if t is None:
        return None, {"used": False, "reason": "no parallaxes of members known"}
    try:
        cp = cluster_parallax_prior(t, source="members")
    except (KeyError, ValueError) as exc:
        return None, {"used": False, "reason": str(exc)}
    return cp.prior(), {**cp.to_dict(), "source": "members' parallaxes"}


def run_isochrone_fit(catalog_path: str, out_dir: str, members_path: str | None = None,
                      system: str = "auto", priors: list[str] | None = None,
                      parallax: tuple[float, float] | None = None,
                      isochrones: str | None = None, cache_dir: str | None = None,
                      options: dict[str, Any] | None = None, plots: bool = True,
                      log=None, parallax_prior: str = "auto",
                      zero_points: dict[str, float] | None = None,
                      match_radius_arcsec: float = MATCH_RADIUS_ARCSEC) -> dict[str, Any]:
    """Fit one catalogue and write the products.

    Parameters
    ----------
    catalog_path : str
        Photometric table (CSV, ECSV, FITS, VOTable): our calibrated catalogue (``id ra dec
        U U_err U_flags ...``, zero-point errors in ``meta['calibration']``), a Gaia table, or
        a published member list with photometry.
    out_dir : str
        Folder for ``fit.json``, ``fit.h5`` and the figures.
    members_path : str, optional
        Member list joined by identifier or, without common identifiers, by position
        (:func:`tgpcore.fitting.data.match_members`).
    system : str
        ``auto``, ``johnson`` or ``gaia``.
    priors : list of str, optional
        Prior/fix specs (``mh=0.0``, ``dm=9.7+-0.05``, ``log_age=9:9.8``).
    parallax : (float, float), optional
        Cluster parallax and error (mas) turned into a distance-modulus prior (the global
        zero point -0.017 mas is applied).
    isochrones : str, optional
        CMD files/directory or an HDF5 library; the packaged PARSEC grid by default.
    cache_dir : str, optional
        Isochrone HDF5 cache folder.
    options : dict, optional
        :class:`FitSettings` fields (``n_walkers``, ``n_steps``, ``n_burn``, ``max_steps``,
        ``restarts``, ``seed``, ``systematics``, ``trusted_teff_min``, ...) and
        ``intrinsic_scatter``, ``outlier_fraction``, ``p_min``, ``mag_max`` (faintest anchor
        magnitude used).
    plots : bool
        Write the figures.
    log : callable, optional
        Progress messages.
    parallax_prior : {'auto', 'off'}
        ``auto``: a distance-modulus prior from the members' parallaxes whenever they are
        known (member list or catalogue; :func:`~tgpcore.fitting.parallax.cluster_parallax_prior`),
        unless the user constrains the distance modulus.
    zero_points : dict, optional
        Zero-point 1-sigma per band (mag), overriding the catalogue's.
    match_radius_arcsec : float
        Radius of the positional join of the member list.

    Returns
    -------
    dict
        ``fit_json``, ``fit_h5`` (paths), ``checksum`` (of fit.h5), ``figures``, ``summary``
        (flat numbers), ``warnings`` (text), ``result`` (the fit.json content), ``inputs``
        (checksums).
    """
    opts = dict(options or {})
    p_min = float(opts.pop("p_min", 0.02))
    mag_max = opts.pop("mag_max", None)
    model_kw = {k: opts.pop(k) for k in ("intrinsic_scatter", "outlier_fraction") if k in opts}
    settings = FitSettings(**opts, model=ModelSettings(**model_kw)) if model_kw \
        else FitSettings(**opts)
    table = read_table(catalog_path)
    members = read_table(members_path) if members_path else None
    data = photometry_from_table(table, system=system, members=members, p_min=p_min,
                                 source=str(catalog_path), anchor_max=mag_max,
                                 zero_points=zero_points,
                                 match_radius_arcsec=match_radius_arcsec)
    say = log or (lambda m: None)
    for n in data.notes:
        say(n)
    spec: dict[str, Any] = {}
    for s in priors or []:
        name, prior = parse_prior(s)
        spec[name] = prior
    dm_prior, plx_info = resolve_parallax_prior(table, members, parallax, parallax_prior,
                                                "dm" in spec, match_radius_arcsec)
    if dm_prior is not None:
        spec["dm"] = dm_prior
        say(f"parallax prior: (m-M)0 = {dm_prior.mu:.3f} ± {dm_prior.sigma:.3f}")
    else:
        say(f"no parallax prior: {plx_info.get('reason')}")
    grid = load_grid(isochrones, cache_dir=cache_dir)
    bands = data.bands
    if "G" in bands and not {"G_BP", "G_RP"} <= set(bands) \
            and {"G_BP", "G_RP"} <= set(grid.bands):
        bands = (*bands, *(b for b in ("G_BP", "G_RP") if b not in bands))
    interp = IsochroneInterpolator(grid, bands=bands)
    result = fit_cluster(data, interpolator=interp, priors=spec or None, settings=settings,
                         log=log)
    result.parallax_prior = plx_info
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = result.write_json(out / FIT_JSON)
    h5_path = result.write_hdf5(out / FIT_H5)
    figures = fit_figures(result.fitted_data, result, interp, out) if plots else {}
    inputs = {"catalog": sha256_file(catalog_path),
              "members": sha256_file(members_path) if members_path else None,
              "isochrones": grid.source}
    return {"fit_json": str(json_path), "fit_h5": str(h5_path),
            "checksum": sha256_file(h5_path),
            "figures": {k: str(v) for k, v in figures.items()},
            "summary": result.summary(), "warnings": list(result.warnings),
            "result": result.to_dict(), "inputs": inputs}
