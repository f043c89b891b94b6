"""Where a cluster's frames point: the centre and radius of a catalogue cone covering them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from tgpcore.grouping import angular_separation_deg


@dataclass(frozen=True)
class Footprint:
    """A cone covering a set of frames: centre (deg, J2000) and radius (deg)."""

    cluster: str
    ra_deg: float
    dec_deg: float
    radius_deg: float
    n_frames: int
    note: str = ""


def cluster_footprint(cluster: str, frames: Iterable[dict], margin: float = 1.2,
                      default_scale_arcsec: float = 1.0) -> Footprint:
    """The cone covering the frames of one cluster.

    Parameters
    ----------
    cluster : str
        Cluster name (for the record).
    frames : iterable of dict
        ``ra_deg``, ``dec_deg`` (the header pointing, J2000), ``naxis1``, ``naxis2`` and the
        header summary's ``pixel_scale_arcsec`` under ``header``.
    margin : float
        Radius multiplier, for pointing errors.
    default_scale_arcsec : float
        Pixel scale assumed when a frame's profile and header do not give one (noted).

    Raises
    ------
    ValueError
        If no frame has a readable RA/DEC.
    """
    frames = [f for f in frames if f.get("ra_deg") is not None and f.get("dec_deg") is not None]
    if not frames:
        raise ValueError(f"cluster {cluster}: no frame has a readable RA/DEC; cannot place a "
                         "catalogue cone")
    ra = np.radians([f["ra_deg"] for f in frames])
    dec = np.radians([f["dec_deg"] for f in frames])
    v = np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)]).mean(axis=1)
    ra0 = math.degrees(math.atan2(v[1], v[0])) % 360.0
    dec0 = math.degrees(math.atan2(v[2], math.hypot(v[0], v[1])))
    note = ""
    half_diag = 0.0
    for f in frames:
        scale = (f.get("header") or {}).get("pixel_scale_arcsec")
        if not scale:
            scale, note = default_scale_arcsec, (f"pixel scale unknown: {default_scale_arcsec}\"/px "
                                                 "assumed for the cone radius")
        n1, n2 = f.get("naxis1") or 0, f.get("naxis2") or 0
        half_diag = max(half_diag, 0.5 * math.hypot(n1, n2) * scale / 3600.0)
    far = max(angular_separation_deg(ra0, dec0, f["ra_deg"], f["dec_deg"]) for f in frames)
    return Footprint(cluster, ra0, dec0, margin * (far + half_diag), len(frames), note)
