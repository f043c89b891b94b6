"""One cluster catalogue in, the fit's products out: ``fit.json``, ``fit.h5`` and figures.

This is what ``tgp fit`` and the full run's isochrone-fit stage do, as a plain function (usable
from a notebook).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tgpcore.fitting.data import photometry_from_table, read_table
from tgpcore.fitting.fit import FitSettings, fit_cluster
from tgpcore.fitting.priors import dm_prior_from_parallax, parse_prior
from tgpcore.fitting.synthetic import ModelSettings
from tgpcore.io.checksum import sha256_file
from tgpcore.isochrones.interpolate import IsochroneInterpolator
from tgpcore.isochrones.store import load_grid
from tgpcore.plots.isochrones import fit_figures

FIT_JSON = "fit.json"
FIT_H5 = "fit.h5"


def run_isochrone_fit(catalog_path: str, out_dir: str, members_path: str | None = None,
                      system: str = "auto", priors: list[str] | None = None,
                      parallax: tuple[float, float] | None = None,
                      isochrones: str | None = None, cache_dir: str | None = None,
                      options: dict[str, Any] | None = None, plots: bool = True,
                      log=None) -> dict[str, Any]:
    """Fit one catalogue and write the products.

    Parameters
    ----------
    catalog_path : str
        Photometric table (CSV, ECSV, FITS, VOTable).
    out_dir : str
        Folder for ``fit.json``, ``fit.h5`` and the figures.
    members_path : str, optional
        Membership table (``members.ecsv`` of ``tgp members``) joined by identifier.
    system : str
        ``auto``, ``johnson`` or ``gaia``.
    priors : list of str, optional
        Prior/fix specs (``mh=0.0``, ``dm=9.7+-0.05``, ``log_age=9:9.8``).
    parallax : (float, float), optional
        Cluster parallax and error (mas) turned into a distance-modulus prior.
    isochrones : str, optional
        CMD files/directory or an HDF5 library; the packaged PARSEC grid by default.
    cache_dir : str, optional
        Isochrone HDF5 cache folder.
    options : dict, optional
        :class:`FitSettings` fields (``n_walkers``, ``n_steps``, ``n_burn``, ``restarts``,
        ``seed``, ...) and ``intrinsic_scatter``, ``outlier_fraction``, ``p_min``,
        ``mag_max`` (faintest anchor magnitude used).
    plots : bool
        Write the figures.
    log : callable, optional
        Progress messages.

    Returns
    -------
    dict
        ``fit_json``, ``fit_h5`` (paths), ``checksum`` (of fit.h5), ``figures``, ``summary``
        (flat numbers), ``result`` (the fit.json content), ``inputs`` (checksums).
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
                                 source=str(catalog_path), anchor_max=mag_max)
    spec: dict[str, Any] = {}
    for s in priors or []:
        name, prior = parse_prior(s)
        spec[name] = prior
    if parallax is not None:
        spec["dm"] = dm_prior_from_parallax(*parallax)
    grid = load_grid(isochrones, cache_dir=cache_dir)
    interp = IsochroneInterpolator(grid, bands=data.bands)
    result = fit_cluster(data, interpolator=interp, priors=spec or None, settings=settings,
                         log=log)
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
            "summary": result.summary(), "result": result.to_dict(), "inputs": inputs}
