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
#: Observable name of each isochrone band (for zero points given per band).
_BAND_OBS: dict[str, str] = {"G_BP": "BP", "G_RP": "RP"}
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
#: Right ascension and declination spellings (degrees) used to join tables by position.
RA_ALIASES: tuple[str, ...] = ("ra", "ra_icrs", "raj2000", "_raj2000", "ra_deg", "radeg",
                               "ra_j2000", "alpha")
DEC_ALIASES: tuple[str, ...] = ("dec", "de_icrs", "dej2000", "_dej2000", "dec_deg", "dedeg",
                                "de", "dec_j2000", "delta")
#: Default radius (arcsec) of the one-to-one positional join of a member list.
MATCH_RADIUS_ARCSEC = 1.0
#: Photometry flags (bits of ``<band>_flags``, :mod:`tgpcore.photometry.flags`) that remove a
#: measurement from the fit: a saturated core or an aperture off the image is no measurement.
FLAG_DROP = 1 | 8          # SATURATED | EDGE
#: Flags that keep a measurement with extra error (mag, in quadrature): another star's light
#: in the aperture or masked pixels in it (0.03), no measured aperture correction or an assumed
#: colour in the calibration (0.02).
FLAG_INFLATE: dict[int, float] = {2: 0.03, 4: 0.03, 64: 0.02, 128: 0.02}
#: Zero-point uncertainty (mag) of Gaia DR3 G, BP and RP against the isochrones' bolometric
#: corrections (passbands and Vega zero points of the models; Riello et al. 2021 give the
#: photometric system's own to a few mmag): the zero-point nuisance of Gaia-band fits.
GAIA_ZERO_POINT_SIGMA = 0.01


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


def _ra_dec(table: Table) -> tuple[np.ndarray, np.ndarray] | None:
    ra, dec = _find(table.colnames, RA_ALIASES), _find(table.colnames, DEC_ALIASES)
    if ra is None or dec is None:
        return None
    return _column(table, ra), _column(table, dec)


def match_members(table: Table, members: Table, source: str = "members",
                  radius_arcsec: float = MATCH_RADIUS_ARCSEC) -> tuple[np.ndarray, dict]:
    """Membership probability of each row of ``table`` from a member list, by identifier or by
    position.

    The tables are joined by identifier when both have one (:data:`ID_ALIASES`) and the ids
    match at least one star; otherwise by position (:data:`RA_ALIASES`, :data:`DEC_ALIASES`,
    degrees): each member goes to its nearest catalogue star within ``radius_arcsec`` when that
    star's nearest member is the same one (one-to-one).

    Parameters
    ----------
    table : astropy.table.Table
        The photometric catalogue.
    members : astropy.table.Table
        ``members.ecsv`` of ``tgp members`` or any member list (Cantat-Gaudin 2020, Hunt &
        Reffert 2023, Dias 2021...) with an identifier or positions and, optionally, a
        probability (:data:`PROB_ALIASES`; without one every listed star has probability 1).
    source : str
        Name of the member list for messages.
    radius_arcsec : float
        Largest separation of a positional match.

    Returns
    -------
    probabilities : ndarray
        Per catalogue row; 0 for stars the list does not give.
    report : dict
        ``method`` (``id`` or ``position``), ``n_members``, ``n_matched``, ``radius_arcsec``,
        ``probability_column`` and ``note`` (one line saying how many stars matched).

    Raises
    ------
    KeyError
        If the tables share neither identifiers nor positions.
    """
    pcol = _find(members.colnames, PROB_ALIASES)
    probs = np.nan_to_num(_column(members, pcol)) if pcol else np.ones(len(members))
    id_cat = _find(table.colnames, ID_ALIASES)
    id_mem = _find(members.colnames, ID_ALIASES)
    report = {"n_members": len(members), "probability_column": pcol,
              "radius_arcsec": None}
    if id_cat is not None and id_mem is not None:
        lookup = dict(zip(np.asarray(members[id_mem]).tolist(), probs.tolist(), strict=True))
        keys = np.asarray(table[id_cat]).tolist()
        n_hit = sum(k in lookup for k in keys)
        if n_hit > 0:
            out = np.array([lookup.get(k, 0.0) for k in keys])
            report.update(method="id", n_matched=int(n_hit),
                          note=f"{n_hit} of {len(members)} stars of {source} matched by "
                               f"identifier ({id_cat} = {id_mem})")
            return out, report
    pos_cat, pos_mem = _ra_dec(table), _ra_dec(members)
    if pos_cat is None or pos_mem is None:
        raise KeyError(f"cannot join {source} to the catalogue: need an identifier column "
                       f"({', '.join(ID_ALIASES)}) with common values, or positions "
                       f"({'/'.join(RA_ALIASES[:3])}, {'/'.join(DEC_ALIASES[:3])}) in both")
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    out = np.zeros(len(table))
    okc = np.isfinite(pos_cat[0]) & np.isfinite(pos_cat[1])
    okm = np.isfinite(pos_mem[0]) & np.isfinite(pos_mem[1])
    n_hit = 0
    if okc.sum() and okm.sum():
        ic, im = np.flatnonzero(okc), np.flatnonzero(okm)
        cc = SkyCoord(pos_cat[0][ic] * u.deg, pos_cat[1][ic] * u.deg)
        cm = SkyCoord(pos_mem[0][im] * u.deg, pos_mem[1][im] * u.deg)
        j_c, sep, _ = cm.match_to_catalog_sky(cc)       # nearest star of each member
        j_m, _, _ = cc.match_to_catalog_sky(cm)         # nearest member of each star
        mutual = (j_m[j_c] == np.arange(len(im))) & (sep.arcsec <= radius_arcsec)
        out[ic[j_c[mutual]]] = probs[im[mutual]]
        n_hit = int(mutual.sum())
    report.update(method="position", n_matched=n_hit, radius_arcsec=float(radius_arcsec),
                  note=f"{n_hit} of {len(members)} stars of {source} matched by position "
                       f"(one-to-one nearest within {radius_arcsec:g} arcsec)")
    return out, report


def join_members(table: Table, members: Table, source: str = "members",
                 radius_arcsec: float = MATCH_RADIUS_ARCSEC) -> np.ndarray:
    """Membership probability of each row of ``table`` (see :func:`match_members`): 0 for
    stars the member list does not give.

    Raises
    ------
    KeyError
        If the two tables share neither an identifier nor positions.
    """
    return match_members(table, members, source, radius_arcsec)[0]


def _flags(table: Table, col: str, obs: str) -> np.ndarray | None:
    fcol = _find(table.colnames, (f"{col}_flags", f"{obs}_flags", f"{obs}_flag",
                                  f"{col}_flag"))
    if fcol is None:
        return None
    c = table[fcol]
    arr = c.filled(0) if hasattr(c, "filled") else c
    return np.asarray(arr, dtype=np.int64)


def _calibration_zero_points(table: Table) -> dict[str, float]:
    """Band -> zero-point error (mag) from a calibrated catalogue's ``meta['calibration']``."""
    cal = table.meta.get("calibration") if hasattr(table, "meta") else None
    out: dict[str, float] = {}
    if isinstance(cal, dict):
        for band, sol in cal.items():
            if isinstance(sol, dict) and sol.get("zp_err") is not None:
                try:
                    v = float(sol["zp_err"])
                except (TypeError, ValueError):
                    continue
                if np.isfinite(v) and v >= 0:
                    out[str(band)] = v
    return out


def photometry_from_table(table: Table, system: Literal["auto", "johnson", "gaia"] = "auto",
                          members: Table | None = None, p_min: float = P_MIN_DEFAULT,
                          source: str = "table", anchor_max: float | None = None,
                          zero_points: dict[str, float] | None = None,
                          match_radius_arcsec: float = MATCH_RADIUS_ARCSEC
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
    zero_points : dict, optional
        1-sigma zero-point uncertainty (mag) per band (``U``, ``B``, ``V``, ``G``, ``BP``,
        ``RP``...), overriding the catalogue's ``meta['calibration'][band]['zp_err']`` (our
        calibrated catalogues) and the default of Gaia bands (:data:`GAIA_ZERO_POINT_SIGMA`).
    match_radius_arcsec : float
        Radius of the positional join of ``members`` (:func:`match_members`).

    Returns
    -------
    ClusterPhotometry
        Its ``zero_point_sigma`` holds each observable's zero-point uncertainty; ``notes``
        say what was done, including how many members matched.

    Notes
    -----
    Our calibrated catalogue (``id ra dec U U_err U_flags B ...``, :mod:`tgpcore.photcal`):

    * a measurement flagged saturated or at the edge (:data:`FLAG_DROP`) is not used; one
      flagged blended, near a mask, without aperture correction or calibrated with an
      assumed colour keeps its value with the extra error of :data:`FLAG_INFLATE`;
    * the per-star errors there include the calibration's own uncertainty, which is common to
      all stars: the zero-point error of ``meta['calibration']`` is taken out of them in
      quadrature (never below half the error) and enters the fit as a zero-point nuisance;
    * rows with no magnitude at all are counted in the notes and left out.

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
    cal_zp = _calibration_zero_points(table)
    band_zp: dict[str, float] = {}
    if any(o in ("G", "BP", "RP", "BP-RP") for o in names):
        band_zp.update(dict.fromkeys(("G", "BP", "RP"), GAIA_ZERO_POINT_SIGMA))
    for obs in names:
        if "-" not in obs and obs in cal_zp:
            band_zp[obs] = cal_zp[obs]
    for b, v in (zero_points or {}).items():
        band_zp[str(b)] = float(v)
    n_flag_drop, n_flag_inflate = 0, 0
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
        v, e = v.copy(), e.copy()
        if obs in cal_zp and "-" not in obs:
            common = cal_zp[obs]
            e = np.sqrt(np.maximum(e**2 - common**2, 0.25 * e**2))
        fl = _flags(table, found[obs], obs)
        if fl is not None:
            drop = (fl & FLAG_DROP) != 0
            extra = np.zeros(len(v))
            for bit, add in FLAG_INFLATE.items():
                extra = np.where((fl & bit) != 0, np.hypot(extra, add), extra)
            n_flag_drop += int((drop & np.isfinite(v)).sum())
            n_flag_inflate += int(((extra > 0) & ~drop & np.isfinite(v)).sum())
            v[drop] = np.nan
            e = np.hypot(e, extra)
        bad = ~np.isfinite(v) | ~np.isfinite(e) | (e <= 0)
        v[bad], e[bad] = np.nan, np.nan
        vals.append(v)
        errs.append(e)
    values, errors = np.column_stack(vals), np.column_stack(errs)
    if n_flag_drop or n_flag_inflate:
        notes.append(f"photometry flags: {n_flag_drop} measurements saturated or at the edge "
                     f"not used, {n_flag_inflate} blended/near a mask/without aperture "
                     "correction/with an assumed colour kept with extra error "
                     "(tgpcore.fitting.data.FLAG_INFLATE)")
    if cal_zp:
        notes.append("calibration zero-point errors (" + ", ".join(
            f"{b} {v:.3f}" for b, v in cal_zp.items() if b in names)
            + " mag) taken out of the per-star errors and fitted as zero-point nuisances")
    no_mag = ~np.isfinite(values).any(axis=1)
    if no_mag.any():
        notes.append(f"{int(no_mag.sum())} rows with no magnitude in any fitted band ignored")
    zp_sigma: dict[str, float] = {}
    for obs in names:
        coeff = OBSERVABLES[obs]
        parts = [band_zp.get(_BAND_OBS.get(b, b)) for b in coeff]
        if all(x is not None for x in parts) and parts:
            zp_sigma[obs] = float(np.sqrt(np.sum(np.square(parts))))
    if members is not None:
        p, rep = match_members(table, members, source="the member list",
                               radius_arcsec=match_radius_arcsec)
        notes.append(rep["note"])
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
    return ClusterPhotometry(tuple(names), values[ok], errors[ok], p[ok], ids, source, notes,
                             zp_sigma)
