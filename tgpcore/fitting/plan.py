"""Which photometry of a cluster is fitted: the night's own U, B, V matched to Gaia first, the
members' Gaia G, BP, RP as the independent check (or as all there is)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

JOHNSON, GAIA = "johnson", "gaia"


@dataclass(frozen=True)
class FitItem:
    """One isochrone fit: a cluster, a photometric system, its catalogue and members."""

    cluster: str
    system: str
    catalog: str
    members: str | None
    out_dir: Path


def fit_items(cluster: str, matched: str | None, members: str | None,
              gaia_catalog: str | None, fit_root: Path) -> list[FitItem]:
    """The fits of one cluster.

    - With a matched catalogue (our calibrated photometry matched to Gaia, memberships in it),
      the Johnson fit in ``fit/<cluster>``.
    - With members and the cluster's Gaia table, the Gaia fit: in ``fit/<cluster>_gaia`` beside
      a Johnson fit, else in ``fit/<cluster>``.
    """
    items = []
    if matched:
        items.append(FitItem(cluster, JOHNSON, str(matched), None, fit_root / cluster))
    if members and gaia_catalog:
        out = fit_root / (f"{cluster}_gaia" if matched else cluster)
        items.append(FitItem(cluster, GAIA, str(gaia_catalog), str(members), out))
    return items


def primary_system(ok: set[str] | list[str]) -> str | None:
    """The fit that gives the cluster's parameters: ours when it succeeded, else Gaia's."""
    if JOHNSON in ok:
        return JOHNSON
    return GAIA if GAIA in ok else None


#: The order bands are named in, per photometric system.
_BAND_ORDER = {JOHNSON: ("U", "B", "V"), GAIA: ("G", "BP", "RP")}


def fit_label(system: str, observables: list[str] | tuple[str, ...] | None = None) -> str:
    """How the console and the alarms name a fit's photometry: the bands it really used.

    ``observables`` are the fit's magnitudes and colours (``fit.json``'s
    ``data.observables``, e.g. ``["V", "B-V"]``): a night without U is "our B, V", not
    "our U, B, V". Without them, every band of the system is named.
    """
    order = _BAND_ORDER.get(system, ())
    used = set()
    for name in observables or ():
        used.update(part.strip() for part in str(name).replace("_", "-").split("-"))
    bands = [b for b in order if b in used] or list(order)
    who = "our" if system == JOHNSON else "Gaia"
    return f"{who} {', '.join(bands)}" if bands else system
