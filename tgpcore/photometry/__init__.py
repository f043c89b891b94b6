"""Source photometry: background, detection, FWHM, aperture photometry with local backgrounds
and curve-of-growth corrections, PSF photometry for crowded stars, flags, the merge of short
and long exposures and the multi-band catalogue."""

from tgpcore.photometry.apcorr import ApertureCorrection, curve_of_growth
from tgpcore.photometry.aperture import (
    annulus_background,
    aperture_fluxes,
    aperture_photometry_table,
)
from tgpcore.photometry.background import Background, estimate_background
from tgpcore.photometry.catalog import (
    combine_pointings,
    measure_stack,
    merge_bands,
    merge_short_long,
    write_table,
)
from tgpcore.photometry.detect import detect_stars, measure_fwhm, refine_centroids
from tgpcore.photometry.measure import NoStarsError, PhotometryConfig, measure_image
from tgpcore.photometry.psf import MoffatShape, fit_psf_shape, psf_photometry

__all__ = [
    "ApertureCorrection", "Background", "MoffatShape", "NoStarsError", "PhotometryConfig",
    "annulus_background", "aperture_fluxes", "aperture_photometry_table", "combine_pointings",
    "curve_of_growth", "detect_stars", "estimate_background", "fit_psf_shape", "measure_fwhm",
    "measure_image", "measure_stack", "merge_bands", "merge_short_long", "psf_photometry",
    "refine_centroids", "write_table",
]
