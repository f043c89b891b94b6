"""Registration: align frames of a pointing onto one reference grid, stack them, mosaic.

>>> from tgpcore.registration import prepare_reference, align_to_reference, make_stack
"""

from tgpcore.registration.align import Alignment, align_frame
from tgpcore.registration.products import (
    align_to_reference,
    exposure_classes,
    make_stack,
    prepare_reference,
    refine_xcorr_alignments,
)
from tgpcore.registration.stack import (
    StackMember,
    StackResult,
    TargetGrid,
    read_exposure_map,
    stack_frames,
)
from tgpcore.registration.stars import detect_stars, estimate_fwhm

__all__ = [
    "Alignment",
    "StackMember",
    "StackResult",
    "TargetGrid",
    "align_frame",
    "align_to_reference",
    "detect_stars",
    "estimate_fwhm",
    "exposure_classes",
    "make_stack",
    "prepare_reference",
    "read_exposure_map",
    "refine_xcorr_alignments",
    "stack_frames",
]
