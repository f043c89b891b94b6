"""Task wrappers of the photometric calibration stage: standards per frame, one fit per
filter, one calibrated catalogue per cluster."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tgpcore.photcal.observe import fit_reference, fit_standards, measure_standards
from tgpcore.photcal.products import calibrate_file


@task(name="measure-standards", cache_policy=NO_CACHE,
      description="Measure and identify the standard stars of one frame")
def standards_task(frame_path: str, standards_path: str, wcs_path: str | None = None,
                   airmass: float | None = None, filt: str | None = None,
                   config: dict[str, Any] | None = None, radius_arcsec: float = 2.0,
                   night: str = "") -> dict[str, Any]:
    """Run :func:`tgpcore.photcal.measure_standards`."""
    return measure_standards(frame_path, standards_path, wcs_path=wcs_path, airmass=airmass,
                             filt=filt, config=config, radius_arcsec=radius_arcsec,
                             night=night)


@task(name="fit-calibration", cache_policy=NO_CACHE,
      description="Fit ZP, extinction and colour term of one filter and night")
def fit_filter_task(rows: list[dict[str, Any]], filt: str, min_stars: int = 5,
                    min_airmass_range: float = 0.2) -> dict[str, Any]:
    """Run :func:`tgpcore.photcal.fit_standards`; returns the solution as plain data."""
    return fit_standards(rows, filt, min_stars=min_stars,
                         min_airmass_range=min_airmass_range).to_dict()


@task(name="fit-reference", cache_policy=NO_CACHE,
      description="Fit ZP and colour terms against a reference catalogue")
def reference_task(inst_path: str, reference_path: str, transformation: str | None = None,
                   bands: tuple[str, ...] = ("B", "V"), min_stars: int = 10,
                   radius_arcsec: float = 1.5) -> dict[str, Any]:
    """Run :func:`tgpcore.photcal.fit_reference` on a catalogue file."""
    from astropy.table import Table

    inst = Table.read(inst_path, format="ascii.ecsv")
    sols, fails, matched = fit_reference(inst, reference_path, transformation,
                                         radius_arcsec=radius_arcsec, bands=bands,
                                         min_stars=min_stars)
    return {"solutions": {b: s.to_dict() for b, s in sols.items()}, "failed": fails,
            "matched": [dict(zip(matched.colnames, r, strict=True)) for r in matched]
            if len(matched) else []}


@task(name="calibrate-catalogue", cache_policy=NO_CACHE,
      description="Apply the calibration to a cluster catalogue and export it")
def calibrate_task(inst_path: str, solutions: dict[str, dict[str, Any]], out_dir: str,
                   name: str, h5_path: str | None = None) -> dict[str, Any]:
    """Run :func:`tgpcore.photcal.products.calibrate_file`."""
    return calibrate_file(inst_path, solutions, out_dir, name, h5_path=h5_path)
