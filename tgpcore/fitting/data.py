"""The photometry a cluster fit uses: observables, their errors and membership weights.

An *observable* is a magnitude or a colour: a linear combination of isochrone bands
(:data:`OBSERVABLES`), e.g. ``V`` = V, ``BP-RP`` = G_BP - G_RP. Magnitudes with independent
errors are used as they are (``U``, ``B``, ``V``: the V vs B-V diagram and the U-B vs B-V
colour-colour diagram together); a colour is used where a table carries only the colour
(``bp_rp`` of a Gaia export). One magnitude, the *anchor* (V, else G), sets the magnitude
scale; every star needs it and at least one other observable.

:func:`photometry_from_table` reads a table with any of the usual column spellings
(:data:`MAG_ALIASES`, :data:`ERR_SUFFIXES`), joins a membership table on ``source_id`` (or an
alias) and takes its probability column (:data:`PROB_ALIASES`) as weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from astropy.table import Table

#: Observables and their isochrone-band coefficients.
OBSERVABLES: dict[str, dict[str, float]] = {
    "U": {"U": 1.0}, "B": {"B": 1.0}, "V": {"V": 1.0}, "R": {"R": 1.0}, "I": {"I": 1.0},
    "G": {"G": 1.0}, "BP": {"G_BP": 1.0}, "RP": {"G_RP": 1.0},
    "BP-RP": {"G_BP": 1.0, "G_RP": -1.0}, "B-V": {"B": 1.0, "V": -1.0},
    "U-B": {"U": 1.0, "B": -1.0}, "V-I": {"V": 1.0, "I": -1.0},
}
#: Observables of each photometric system, in order of preference within the system.
SYSTEMS: dict[str, tuple[str, ...]] = {
    "johnson": ("V", "B", "U", "R", "I", "B-V", "U-B", "V-I"),
    "gaia": ("G", "BP", "RP", "BP-RP"),
}
#: Column names accepted for each observable (compared case-insensitively).
MAG_ALIASES: dict[str, tuple[str, ...]] = {
    "U": ("U", "Umag", "U_mag", "mag_U", "Johnson_U", "U_std"),
    "B": ("B", "Bmag", "B_mag", "mag_B", "Johnson_B", "B_std"),
    "V": ("V", "Vmag", "V_mag", "mag_V", "Johnson_V", "V_std"),
    "R": ("R", "Rmag", "R_mag", "mag_R", "Rc", "Rcmag"),
    "I": ("I", "Imag", "I_mag", "mag_I", "Ic", "Icmag"),
    "G": ("phot_g_mean_mag", "G", "Gmag", "G_mag"),
    "BP": ("phot_bp_mean_mag", "BP", "G_BP", "BPmag", "BP_mag"),
    "RP": ("phot_rp_mean_mag", "RP", "G_RP", "RPmag", "RP_mag"),
    "BP-RP": ("bp_rp", "BP-RP", "BP_RP", "BPRP", "bp-rp"),
    "B-V": ("B-V", "B_V", "BV", "bv", "b-v"),
    "U-B": ("U-B", "U_B", "UB", "ub", "u-b"),
    "V-I": ("V-I", "V_I", "VI", "vi", "v-i"),
}
#: Error column spellings: ``{name}`` is replaced by each alias of the observable.
ERR_PATTERNS: tuple[str, ...] = ("{name}_err", "e_{name}", "{name}_error", "err_{name}",
                                 "sigma_{name}", "{name}err", "e{name}", "d{name}",
                                 "{name}_sigma", "s_{name}")
#: Gaia flux-over-error columns (magnitude error 1.0857 / (flux/error), plus the DR3
#: calibration floor of Riello et al. 2021, Table 5).
FLUX_OVER_ERROR: dict[str, tuple[str, float]] = {
    "G": ("phot_g_mean_flux_over_error", 0.0027553202),
    "BP": ("phot_bp_mean_flux_over_error", 0.0027901700),
    "RP": ("phot_rp_mean_flux_over_error", 0.0037793818),
}
#: Membership-probability column spellings (case-insensitive).
PROB_ALIASES: tuple[str, ...] = ("p_member", "pmemb", "p_memb", "prob", "probability",
                                 "membership_probability", "membership", "p_mem", "pmem",
                                 "proba", "p", "prob_member", "member_prob")
#: Star identifier spellings used to join a membership table.
ID_ALIASES: tuple[str, ...] = ("source_id", "gaia_source_id", "dr3_source_id",
                               "gaia_dr3_source_id", "gaiadr3", "source", "star_id", "id")
#: Stars with membership weight below this are dropped (they only carry the field term).
P_MIN_DEFAULT = 0.02


def default_gaia_error(g: np.ndarray, observable: str) -> np.ndarray:
    """Typical Gaia DR3 uncertainty (mag) of ``observable`` at magnitude G.

    Medians of DR3 photometric errors (Riello et al. 2021, Fig. 16) as a function of G, in
    the same form the simulator uses: G 0.3 mmag + 4 mmag at G = 20; BP 2 mmag + 50 mmag at
    G = 20; RP 2 mmag + 35 mmag at G = 20; BP-RP the two added in quadrature.
    """
    f20 = 10.0 ** (0.4 * (np.asarray(g, float) - 20.0))
    sig = {"G": 0.0003 + 0.004 * f20, "BP": 0.002 + 0.05 * f20, "RP": 0.002 + 0.035 * f20}
    if observable == "BP-RP":
        return np.hypot(sig["BP"], sig["RP"])
    return sig[observable]


@dataclass
class ClusterPhotometry:
    """Photometry of candidate members, ready for the fit.

    Attributes
    ----------
    names : tuple of str
        Observables (keys of :data:`OBSERVABLES`), the anchor first.
    values, errors : ndarray, shape (n_stars, n_observables)
        Observed values and 1-sigma errors (mag); NaN where a star lacks an observable.
    p_member : ndarray
        Membership probabilities (prior weights of the cluster component), 0-1.
    ids : ndarray or None
        Star identifiers.
    source : str
        Where the data came from.
    notes : list of str
        What was assumed (e.g. error models used for missing error columns).
    zero_point_sigma : dict
        1-sigma uncertainty (mag) of each observable's photometric zero point, common to all
        stars (the calibration's, or the photometric system's): a nuisance the fit
        marginalises (:mod:`tgpcore.fitting.systematics`).
    """

    names: tuple[str, ...]
    values: np.ndarray
    errors: np.ndarray
    p_member: np.ndarray
    ids: np.ndarray | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)
    zero_point_sigma: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, float)
        self.errors = np.asarray(self.errors, float)
        self.p_member = np.clip(np.asarray(self.p_member, float), 0.0, 1.0)
        n, d = self.values.shape
        if self.errors.shape != (n, d) or self.p_member.shape != (n,):
            raise ValueError("values, errors and p_member must agree in shape")
        if len(self.names) != d:
            raise ValueError("one name per observable column needed")
        unknown = [o for o in self.names if o not in OBSERVABLES]
        if unknown:
            raise KeyError(f"unknown observables {unknown}; known: {sorted(OBSERVABLES)}")
        if "-" in self.names[0]:
            raise ValueError(f"the anchor (first observable) must be a magnitude, not {self.names[0]}")
        bad = ~np.isfinite(self.errors) & np.isfinite(self.values)
        if bad.any():
            raise ValueError("every observed value needs a finite error")

    @property
    def n_stars(self) -> int:
        """Number of stars."""
        return len(self.values)

    @property
    def anchor(self) -> str:
        """The magnitude that sets the scale (first observable)."""
        return self.names[0]

    @property
    def bands(self) -> tuple[str, ...]:
        """Isochrone bands the observables need, in a fixed order."""
        out: list[str] = []
        for o in self.names:
            for b in OBSERVABLES[o]:
                if b not in out:
                    out.append(b)
        return tuple(out)

    def design_matrix(self) -> np.ndarray:
        """Coefficients (n_observables, n_bands) turning isochrone bands into observables."""
        bands = self.bands
        c = np.zeros((len(self.names), len(bands)))
        for i, o in enumerate(self.names):
            for b, v in OBSERVABLES[o].items():
                c[i, bands.index(b)] = v
        return c

    def is_colour(self) -> np.ndarray:
        """True for observables that are colours (coefficients summing to zero)."""
        return np.array([abs(sum(OBSERVABLES[o].values())) < 1e-12 for o in self.names])

    def subset(self, idx: np.ndarray) -> ClusterPhotometry:
        """The stars ``idx`` only."""
        return ClusterPhotometry(self.names, self.values[idx], self.errors[idx],
                                 self.p_member[idx],
                                 None if self.ids is None else self.ids[idx], self.source,
                                 list(self.notes), dict(self.zero_point_sigma))

    def shifted(self, offsets: dict[str, float]) -> ClusterPhotometry:
        """A copy with ``offsets[name]`` (mag) added to observable ``name`` for every star
        (a zero-point change)."""
        values = self.values.copy()
        for name, d in offsets.items():
            values[:, self.names.index(name)] += float(d)
        return ClusterPhotometry(self.names, values, self.errors.copy(), self.p_member.copy(),
                                 self.ids, self.source, list(self.notes),
                                 dict(self.zero_point_sigma))

    def colour(self, first: str, second: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Observed colour ``first - second`` and its error, from magnitudes or a colour
        column; ``None`` if neither is there."""
        name = f"{first}-{second}"
        if name in self.names:
            k = self.names.index(name)
            return self.values[:, k], self.errors[:, k]
        if first in self.names and second in self.names:
            i, j = self.names.index(first), self.names.index(second)
            return (self.values[:, i] - self.values[:, j],
                    np.hypot(self.errors[:, i], self.errors[:, j]))
        return None

    def magnitude(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Observed magnitude ``name`` and its error, or ``None``."""
        if name not in self.names:
            return None
        k = self.names.index(name)
        return self.values[:, k], self.errors[:, k]


#: astropy formats by file suffix.
_FORMATS = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".fits": "fits", ".fit": "fits",
            ".fits.gz": "fits", ".vot": "votable", ".xml": "votable", ".votable": "votable",
            ".txt": "ascii", ".dat": "ascii", ".tsv": "ascii.tab"}


def read_table(path: str | Path) -> Table:
    """Read a catalogue (CSV, ECSV, FITS, VOTable, whitespace text) chosen by its suffix.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        If the suffix is unknown or the file cannot be parsed (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue file not found: {path}")
    suffix = "".join(path.suffixes[-2:]).lower() if path.name.lower().endswith(".fits.gz") \
        else path.suffix.lower()
    fmt = _FORMATS.get(suffix)
    if fmt is None:
        raise ValueError(f"{path}: unknown table format {suffix!r} (use one of "
                         f"{', '.join(sorted(_FORMATS))})")
    try:
        return Table.read(path, format=fmt)
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds; name the file
        raise ValueError(f"{path}: cannot read as {fmt}: {exc}") from exc


def trim_faint_incomplete(data: ClusterPhotometry, min_fraction: float = 0.97,
                          per_bin: int = 40) -> ClusterPhotometry:
    """Drop non-anchor observables where they stop being complete at the faint end.

    A band missing for faint stars is missing because the star was too faint *in that band*
    (U for red stars, say): a selection on the band's own value, which biases a fit that
    ignores it. Stars are binned along the anchor magnitude (``per_bin`` stars per bin); from
    the faintest bin brightwards, bins where an observable is present for less than
    ``min_fraction`` of the bright-half completeness lose that observable. What remains is
    selected on the anchor only, which the conditional likelihood ignores rightly.

    Returns
    -------
    ClusterPhotometry
        A copy with the incomplete tails set to NaN (a note says where).
    """
    n = data.n_stars
    if n < 2 * per_bin:
        return data
    order = np.argsort(data.values[:, 0])
    nb = n // per_bin
    bins = np.array_split(order, nb)
    values = data.values.copy()
    errors = data.errors.copy()
    notes = list(data.notes)
    for j in range(1, len(data.names)):
        frac = np.array([np.isfinite(values[b, j]).mean() for b in bins])
        ref = float(np.median(frac[: max(nb // 2, 1)]))
        if ref <= 0:
            continue
        k = nb
        while k > 0 and frac[k - 1] < min_fraction * ref:
            k -= 1
        if k == nb:
            continue
        cut = float(data.values[bins[k][0], 0])
        drop = data.values[:, 0] >= cut
        values[drop, j] = np.nan
        errors[drop, j] = np.nan
        notes.append(f"{data.names[j]} incomplete at the faint end: not used for "
                     f"{data.anchor} >= {cut:.2f} ({int(drop.sum())} stars)")
    keep = np.isfinite(values[:, 1:]).any(axis=1)
    out = ClusterPhotometry(data.names, values[keep], errors[keep], data.p_member[keep],
                            None if data.ids is None else data.ids[keep], data.source, notes,
                            dict(data.zero_point_sigma))
    if (~keep).sum():
        out.notes.append(f"{int((~keep).sum())} stars left without a colour and dropped")
    return out


def _find(colnames: list[str], aliases: tuple[str, ...] | list[str]) -> str | None:
    lower = {c.lower(): c for c in colnames}
    for a in aliases:
        if a.lower() in lower:
            return lower[a.lower()]
    return None


def _error_column(colnames: list[str], obs: str) -> str | None:
    names = [p.format(name=a) for a in MAG_ALIASES[obs] for p in ERR_PATTERNS]
    return _find(colnames, names)


def _column(table: Table, name: str) -> np.ndarray:
    col = table[name]
    arr = np.ma.filled(np.ma.asarray(col, dtype=float), np.nan) if hasattr(col, "mask") \
        else np.asarray(col, dtype=float)
    return np.array(arr, dtype=float)


def join_members(table: Table, members: Table, source: str = "members") -> np.ndarray:
    """Membership probability of each row of ``table`` from a membership table.

    Parameters
    ----------
    table : astropy.table.Table
        The photometric catalogue.
    members : astropy.table.Table
        ``members.ecsv`` of ``tgp members`` (``source_id``, ``p_member``) or any table with an
        identifier (:data:`ID_ALIASES`) and, optionally, a probability (:data:`PROB_ALIASES`;
        without one, every listed star has probability 1).
    source : str
        Name of the membership table for error messages.

    Returns
    -------
    ndarray
        Probability per catalogue row; 0 for stars the membership table does not list.

    Raises
    ------
    KeyError
        If the two tables share no identifier column.
    """
    id_cat = _find(table.colnames, ID_ALIASES)
    id_mem = _find(members.colnames, ID_ALIASES)
    if id_cat is None or id_mem is None:
        raise KeyError(f"cannot join {source} to the catalogue: need an identifier column "
                       f"({', '.join(ID_ALIASES)}) in both")
    pcol = _find(members.colnames, PROB_ALIASES)
    probs = _column(members, pcol) if pcol else np.ones(len(members))
    lookup = dict(zip(np.asarray(members[id_mem]).tolist(), np.nan_to_num(probs).tolist(),
                      strict=True))
    return np.array([lookup.get(k, 0.0) for k in np.asarray(table[id_cat]).tolist()])


def photometry_from_table(table: Table, system: Literal["auto", "johnson", "gaia"] = "auto",
                          members: Table | None = None, p_min: float = P_MIN_DEFAULT,
                          source: str = "table", anchor_max: float | None = None
                          ) -> ClusterPhotometry:
    """Observables, errors and membership weights from a catalogue.

    Parameters
    ----------
    table : astropy.table.Table
        Photometric catalogue: Johnson magnitudes (``U B V`` or aliases, errors ``U_err`` /
        ``e_U`` / ...) and/or Gaia photometry (``phot_g_mean_mag``, ``phot_bp_mean_mag``,
        ``phot_rp_mean_mag`` or ``bp_rp``; errors, or ``phot_*_flux_over_error``).
    system : {'auto', 'johnson', 'gaia'}
        Which photometry to fit; ``auto`` uses all there is (Johnson anchored on V).
    members : astropy.table.Table, optional
        Membership table joined by identifier (see :func:`join_members`). Otherwise a
        probability column of ``table`` is used if present, else every star weighs 1.
    p_min : float
        Stars with membership probability below this are left out.
    source : str
        Name of the input, for messages and provenance.
    anchor_max : float, optional
        Leave out stars fainter than this in the anchor magnitude (e.g. G = 18, where Gaia's
        BP-RP becomes unreliable).

    Returns
    -------
    ClusterPhotometry

    Raises
    ------
    KeyError
        If the table lacks the anchor magnitude or a second observable of the system.
    """
    cols = table.colnames
    notes: list[str] = []
    wanted = {"johnson": SYSTEMS["johnson"], "gaia": SYSTEMS["gaia"],
              "auto": SYSTEMS["johnson"] + SYSTEMS["gaia"]}[system]
    found: dict[str, str] = {}
    for obs in wanted:
        c = _find(cols, MAG_ALIASES[obs])
        if c is not None:
            found[obs] = c
    # colours only where the magnitudes they combine are absent
    for col_obs, (a, b) in {"B-V": ("B", "V"), "U-B": ("U", "B"), "V-I": ("V", "I"),
                            "BP-RP": ("BP", "RP")}.items():
        if col_obs in found and a in found and b in found:
            del found[col_obs]
    if "U-B" in found and "B-V" not in found and "B" not in found:
        del found["U-B"]
    anchor = "V" if "V" in found else ("G" if "G" in found else None)
    if anchor is None:
        raise KeyError(f"{source}: no anchor magnitude (V or G, or an alias: "
                       f"{', '.join(MAG_ALIASES['V'] + MAG_ALIASES['G'])})")
    johnson_colour = any(o in found for o in ("B", "B-V", "I", "V-I", "R", "U"))
    if anchor == "V" and system == "auto" and not johnson_colour and "G" in found:
        anchor = "G"
    names = [anchor] + [o for o in wanted if o in found and o != anchor]
    if len(names) < 2:
        raise KeyError(f"{source}: only {anchor} found; a fit needs a colour as well "
                       f"(columns: {', '.join(cols[:30])})")
    vals, errs = [], []
    g_ref = _column(table, found["G"]) if "G" in found else None
    for obs in names:
        v = _column(table, found[obs])
        ecol = _error_column(cols, obs)
        if ecol is not None:
            e = _column(table, ecol)
        elif obs in FLUX_OVER_ERROR and FLUX_OVER_ERROR[obs][0] in cols:
            foe_col, floor = FLUX_OVER_ERROR[obs]
            e = np.hypot(1.0857 / _column(table, foe_col), floor)
        elif obs in ("G", "BP", "RP", "BP-RP") and g_ref is not None:
            e = default_gaia_error(g_ref, obs)
            notes.append(f"{obs}: no error column; typical Gaia DR3 errors at each star's G "
                         "were used (tgpcore.fitting.data.default_gaia_error)")
        else:
            raise KeyError(f"{source}: no error column for {obs} (tried e.g. "
                           f"{found[obs]}_err, e_{found[obs]})")
        bad = ~np.isfinite(v) | ~np.isfinite(e) | (e <= 0)
        v, e = v.copy(), e.copy()
        v[bad], e[bad] = np.nan, np.nan
        vals.append(v)
        errs.append(e)
    values, errors = np.column_stack(vals), np.column_stack(errs)
    if members is not None:
        p = join_members(table, members, source="membership table")
        notes.append("membership probabilities joined from the membership table")
    else:
        pcol = _find(cols, PROB_ALIASES)
        p = np.nan_to_num(_column(table, pcol)) if pcol else np.ones(len(table))
        notes.append(f"membership probabilities from column {pcol!r}" if pcol else
                     "no membership probabilities: every star weighs 1 (the outlier "
                     "component absorbs field stars)")
    ok = np.isfinite(values[:, 0]) & (np.isfinite(values[:, 1:]).sum(axis=1) >= 1) & (p >= p_min)
    if anchor_max is not None:
        ok &= values[:, 0] <= anchor_max
    id_col = _find(cols, ID_ALIASES)
    ids = np.asarray(table[id_col])[ok] if id_col else None
    dropped = int((~ok).sum())
    if dropped:
        notes.append(f"{dropped} rows left out (no {anchor}, no colour, p_member < {p_min}"
                     + (f", or {anchor} > {anchor_max}" if anchor_max is not None else "") + ")")
    return ClusterPhotometry(tuple(names), values[ok], errors[ok], p[ok], ids, source, notes)
