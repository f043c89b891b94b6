"""The photometry stage's FWHM guess: given, else the stack's from registration, else 3.5 px."""

from flows.photometry import PhotometryParams


def test_fwhm_guess_given_then_stack_then_nominal(tmp_path):
    auto = PhotometryParams(data=str(tmp_path))
    assert auto.fwhm_px is None  # registration measures it per pointing
    assert auto.photometry_config()["fwhm_guess_px"] == 3.5
    assert auto.photometry_config(12.4)["fwhm_guess_px"] == 12.4
    given = PhotometryParams(data=str(tmp_path), fwhm_px=4.0)
    assert given.photometry_config(12.4)["fwhm_guess_px"] == 4.0
