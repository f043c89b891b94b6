"""Plate solving: a cascade of solvers (header WCS, reference-catalogue matcher, local
astrometry.net, nova.astrometry.net); a stack is solved once and its WCS carried to its frames.
"""

from tgpcore.astrometry.cascade import STEPS, SolveRequest, solve
from tgpcore.astrometry.catalog import at_epoch, read_reference
from tgpcore.astrometry.matcher import solve_with_catalogue
from tgpcore.astrometry.products import frame_wcs, solve_image
from tgpcore.astrometry.solution import Solution, carry_wcs, header_wcs

__all__ = [
    "STEPS",
    "Solution",
    "SolveRequest",
    "at_epoch",
    "carry_wcs",
    "frame_wcs",
    "header_wcs",
    "read_reference",
    "solve",
    "solve_image",
    "solve_with_catalogue",
]
