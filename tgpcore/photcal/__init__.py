"""Photometric calibration: standards, the atmospheric fit (zero point, extinction, colour
term), reference-catalogue calibration with published transformations, and its application."""

from tgpcore.photcal.apply import calibrate_catalogue
from tgpcore.photcal.fit import CalibrationSolution, TooFewStandardsError, fit_calibration
from tgpcore.photcal.observe import fit_reference, fit_standards, measure_standards
from tgpcore.photcal.products import export_catalogue, read_hdf5_table, write_hdf5_table
from tgpcore.photcal.standards import COLOUR_OF, cross_identify, read_landolt, read_standards
from tgpcore.photcal.transforms import TRANSFORMATIONS, guess_transformation, to_johnson

__all__ = [
    "COLOUR_OF", "TRANSFORMATIONS", "CalibrationSolution", "TooFewStandardsError",
    "calibrate_catalogue", "cross_identify", "export_catalogue", "fit_calibration",
    "fit_reference", "fit_standards", "guess_transformation", "measure_standards",
    "read_hdf5_table", "read_landolt", "read_standards", "to_johnson", "write_hdf5_table",
]
