"""Simulate a whole observing night: raw frames in ``<out>/raw``, the truth in ``<out>/truth``."""

from __future__ import annotations

import dataclasses
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from astropy.table import Table, vstack

from tgpcore.gnomonic import from_tangent
from tgpcore.io.tables import write_table
from tgpcore.isochrones.extinction import extinction_ratios
from tgpcore.isochrones.grid import load_packaged_grid
from tgpcore.simulate.cosmics import cosmic_rays
from tgpcore.simulate.detector import Detector, make_detector
from tgpcore.simulate.flatfield import DEAD, LOW_RESPONSE, make_flats
from tgpcore.simulate.gaia import synthesize_gaia
from tgpcore.simulate.photsys import PhotometricSystem
from tgpcore.simulate.population import (
    FIELD_COMPONENTS,
    choose_standards,
    sample_cluster,
    sample_field,
)
from tgpcore.simulate.presets import STANDARD_FIELDS, SimPreset, resolve_preset
from tgpcore.simulate.rawframe import raw_header, write_raw_frame
from tgpcore.simulate.readout import digitize, expose
from tgpcore.simulate.region import SkyRegion, region_around
from tgpcore.simulate.render import RenderSettings, render_frame_signal
from tgpcore.simulate.schedule import plan_night
from tgpcore.simulate.site import Site
from tgpcore.simulate.truth import (
    NightTruth,
    write_cosmic_rays,
    write_image,
    write_json,
)
from tgpcore.simulate.wcs import pixel_to_world, truth_wcs

FORMAT_VERSION = 1
STAR_ID_BASE = 2_000_000_000_000_000_000
STAR_COLUMNS = ("star_id", "ra", "dec", "pmra_masyr", "pmdec_masyr", "parallax_mas",
                "U", "B", "V", "G", "BP", "RP", "is_member", "is_binary", "is_standard",
                "standard_name", "mass", "mini", "q", "distance_pc", "ebv", "field")
# Independent random streams (SeedSequence keys), so each part is reproducible on its own.
_S_SCHEDULE, _S_DETECTOR, _S_FLAT, _S_CLUSTER, _S_FIELD, _S_STANDARDS, _S_GAIA, _S_FRAME = (
    1, 2, 3, 4, 5, 6, 7, 100)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *keys]))


def _f32(a: np.ndarray) -> np.ndarray:
    """Round a map through float32, the precision it is stored with in the truth."""
    return a.astype(np.float32).astype(np.float64)


def _footprint(frames: list[dict[str, Any]], p: SimPreset) -> tuple[np.ndarray, np.ndarray]:
    xs = np.array([-0.5, p.nx - 0.5, p.nx - 0.5, -0.5])
    ys = np.array([-0.5, -0.5, p.ny - 0.5, p.ny - 0.5])
    ras, decs = [], []
    for f in frames:
        r, d = pixel_to_world(truth_wcs(f), xs, ys)
        ras.append(r)
        decs.append(d)
    return np.concatenate(ras), np.concatenate(decs)


def _place_standards(stds: Table, frames: list[dict[str, Any]], p: SimPreset,
                     rng: np.random.Generator, field_name: str) -> Table:
    """Positions inside the central part common to all visits, >= 20 arcsec apart."""
    ra_c = float(np.mean([f["ra_true_deg"] for f in frames]))
    dec_c = float(np.mean([f["dec_true_deg"] for f in frames]))
    fov = p.field_of_view_arcmin()
    box = 0.38 * min(fov) / 60.0
    xi, eta = [], []
    for _ in range(100_000):
        if len(xi) == len(stds):
            break
        a, b = rng.uniform(-box, box, 2)
        if all(math.hypot(a - u, b - v) > 20.0 / 3600.0 for u, v in zip(xi, eta, strict=True)):
            xi.append(a)
            eta.append(b)
    else:
        raise RuntimeError(f"cannot place {len(stds)} standards 20 arcsec apart in {field_name}")
    stds["ra"], stds["dec"] = from_tangent(ra_c, dec_c, np.array(xi), np.array(eta))
    number = np.sort(rng.choice(np.arange(100, 1400), size=len(stds), replace=False))
    order = np.argsort(stds["ra"])
    names = np.empty(len(stds), dtype="U16")
    names[order] = [f"{field_name.split()[-1]} {k}" for k in number]
    stds["standard_name"] = names
    stds["field"] = field_name
    return stds


def _standards_catalogue(stars: Table) -> Table:
    s = stars[stars["is_standard"]]
    cat = Table()
    cat["name"] = s["standard_name"]
    cat["field"] = s["field"]
    cat["ra"], cat["dec"] = s["ra"], s["dec"]
    cat["ra"].unit = cat["dec"].unit = "deg"
    cat["V"] = np.round(s["V"], 3)
    cat["B_V"] = np.round(s["B"] - s["V"], 3)
    cat["U_B"] = np.round(s["U"] - s["B"], 3)
    for c in ("V", "B_V", "U_B"):
        cat[c].unit = "mag"
    cat.meta["description"] = ("Landolt-style standards of the simulated night: V, B-V, U-B "
                               "(true values rounded to 0.001 mag); positions ICRS at 2016.0")
    return cat


def _saturated(raw_image: np.ndarray, sources: Table, fwhm_px: float, sat: int) -> np.ndarray:
    """True where any pixel within ~1 FWHM of a star's centre is at the ADC ceiling."""
    ny, nx = raw_image.shape
    r = max(1, int(np.ceil(fwhm_px)))
    off = np.arange(-r, r + 1)
    ix = np.clip(np.rint(np.asarray(sources["x"])).astype(int)[:, None, None] + off[None, None, :],
                 0, nx - 1)
    iy = np.clip(np.rint(np.asarray(sources["y"])).astype(int)[:, None, None] + off[None, :, None],
                 0, ny - 1)
    return (raw_image[iy, ix] >= sat).any(axis=(1, 2))


def _finish_stars(parts: list[Table]) -> Table:
    stars = vstack(parts)
    stars["star_id"] = STAR_ID_BASE + np.arange(1, len(stars) + 1, dtype=np.int64)
    stars = stars[list(STAR_COLUMNS)]
    stars["ra"].unit = stars["dec"].unit = "deg"
    for c in ("U", "B", "V", "G", "BP", "RP"):
        stars[c].unit = "mag"
    stars["mass"].unit = stars["mini"].unit = "solMass"
    stars.meta["description"] = (
        "every rendered star: ICRS position at epoch 2016.0; apparent (extincted) standard "
        "magnitudes; mass = present-day system mass, mini = primary initial mass, q = mass "
        "ratio (0 for single stars)")
    return stars


def _frames_table(frames: list[dict[str, Any]]) -> Table:
    t = Table(rows=[tuple(f.values()) for f in frames], names=list(frames[0].keys()))
    units = {"exptime_s": "s", "airmass": "", "seeing_fwhm_arcsec": "arcsec",
             "sky_e_per_s": "electron / s", "bias_level_adu": "adu", "flat_level_adu": "adu",
             "ccd_temp_c": "deg_C", "cloud_mag": "mag", "ra_header_deg": "deg", "dec_header_deg": "deg",
             "ra_true_deg": "deg", "dec_true_deg": "deg", "dither_dx_px": "pix",
             "dither_dy_px": "pix", "rotation_deg": "deg", "crval1": "deg", "crval2": "deg",
             "crpix1": "pix", "crpix2": "pix", "cd1_1": "deg / pix", "cd1_2": "deg / pix",
             "cd2_1": "deg / pix", "cd2_2": "deg / pix", "epoch_jyear": "yr"}
    for k, u in units.items():
        if u:
            t[k].unit = u
    for k in ("distortion_x0", "distortion_y0", "distortion_r_px"):  # distorted cameras only
        if k in t.colnames:
            t[k].unit = "pix"
    t.meta["description"] = (
        "one row per raw file. ra/dec_true: sky position of the imaging-area centre; "
        "ra/dec_header: commanded pointing written in the header; dither dx, dy: shift of the "
        "stars (pixels) relative to the pointing's first exposure; WCS: TAN, CRPIX 1-based; "
        "sky_e_per_s: per pixel before the flat; flat_level_adu: flat illumination at flat=1; "
        "cloud_mag: grey extinction by clouds (starlight x 10^(-0.4 cloud_mag))"
        + ("; distortion_*: radial optical distortion, the WCS is TAN-SIP (see "
           "tgpcore.simulate.wcs)" if "distortion_k3" in t.colnames else ""))
    return t


class _FrameMaker:
    """Renders, digitises and writes one frame; safe to call from several threads."""

    def __init__(self, nt: NightTruth, p: SimPreset, seed: int, site: Site, detector: Detector,
                 flats: dict[str, np.ndarray], stars: Table, settings: RenderSettings) -> None:
        self.nt, self.p, self.seed, self.site = nt, p, seed, site
        self.det, self.flats, self.stars, self.settings = detector, flats, stars, settings

    def __call__(self, item: tuple[int, dict[str, Any]]) -> tuple[dict[str, Any], Table | None]:
        i, frame = item
        p, det = self.p, self.det
        rng = _rng(self.seed, _S_FRAME, i)
        kind, exptime = frame["kind"], frame["exptime_s"]
        light, sources = None, None
        if kind == "flat":
            light = frame["flat_level_adu"] * det.gain_e_per_adu * self.flats[frame["filter"]]
        elif kind in ("science", "standard"):
            signal, sources = render_frame_signal(self.stars, frame, self.settings)
            light = signal * self.flats[frame["filter"]]
        cr = cosmic_rays(det.shape, exptime, p.cr_rate_per_cm2_s, p.pixel_size_um, rng) \
            if exptime > 0 else None
        electrons = expose(det, light, exptime, cr, rng) if kind != "bias" else None
        raw = digitize(det, electrons, frame["bias_level_adu"], rng)
        write_raw_frame(self.nt.raw_dir / frame["filename"], raw,
                        raw_header(frame, det, self.site, p.header_read_noise_factor))
        out = {"n_cosmic_rays": 0, "n_cr_pixels": 0, "cr_file": ""}
        if cr is not None:
            path = self.nt.cr_path(frame["filename"])
            write_cosmic_rays(path, det.shape, cr.y, cr.x, cr.charge_e, cr.n_events)
            out = {"n_cosmic_rays": cr.n_events, "n_cr_pixels": len(cr.x),
                   "cr_file": str(path.relative_to(self.nt.truth_dir))}
        if sources is not None:
            fwhm_px = frame["seeing_fwhm_arcsec"] / p.pixel_scale_arcsec
            sources["saturated"] = _saturated(raw[:, :det.nx], sources, fwhm_px,
                                              det.saturation_adu)
            sources.add_column(np.full(len(sources), frame["filename"], dtype="U32"),
                               name="filename", index=0)
        return out, sources


def simulate_night(out_dir: str | os.PathLike, preset: str | SimPreset = "tiny", seed: int = 0,
                   *, workers: int = 1, **overrides: Any) -> NightTruth:
    """Simulate an observing night: raw FITS frames plus the complete truth.

    Parameters
    ----------
    out_dir : path-like
        Output folder; gets ``raw/`` (``sim_0001.fits`` ... in time order) and ``truth/``.
        Files of an earlier simulation there are replaced (stale ``raw/sim_*.fits`` removed).
    preset : str or SimPreset
        ``tiny``, ``demo``, ``bench`` (see :data:`tgpcore.simulate.PRESETS`) or a preset.
    seed : int
        Random seed; the same seed and preset give byte-identical files.
    workers : int
        Threads rendering frames (the output does not depend on it).
    **overrides
        Preset fields to override (e.g. ``ebv=0.5``, ``n_dither=2``).

    Returns
    -------
    NightTruth
        Paths of the raw folder, the truth folder and the truth tables, with readers.
    """
    p = resolve_preset(preset, **overrides)
    seed = int(seed)
    if seed < 0:
        raise ValueError("seed must be >= 0")
    nt = NightTruth.at(out_dir)
    nt.raw_dir.mkdir(parents=True, exist_ok=True)
    (nt.truth_dir / "cr").mkdir(parents=True, exist_ok=True)
    site = Site()
    system = PhotometricSystem(dict(p.zero_point), dict(p.extinction_coeff), dict(p.colour_term))

    frames, pointing = plan_night(p, site, system, _rng(seed, _S_SCHEDULE))
    for i, f in enumerate(frames):
        f["filename"] = f"sim_{i + 1:04d}.fits"
        frames[i] = {"filename": f.pop("filename"), **f}

    grid = load_packaged_grid()
    margin = p.region_margin_arcmin / 60.0
    sci = [f for f in frames if f["kind"] == "science"]
    ras, decs = _footprint(sci, p)
    cl_region = region_around(p.cluster_name, p.cluster_ra_deg, p.cluster_dec_deg, ras, decs,
                              margin)
    cluster = sample_cluster(
        grid, _rng(seed, _S_CLUSTER), name=p.cluster_name, ra=p.cluster_ra_deg,
        dec=p.cluster_dec_deg, log_age=p.log_age, mh=p.mh, distance_pc=p.distance_pc,
        ebv=p.ebv, core_radius_arcmin=p.core_radius_arcmin,
        tidal_radius_arcmin=p.tidal_radius_arcmin, n_systems=p.n_cluster_systems,
        binary_fraction=p.binary_fraction, pmra_masyr=p.cluster_pmra_masyr,
        pmdec_masyr=p.cluster_pmdec_masyr,
        velocity_dispersion_kms=p.cluster_velocity_dispersion_kms,
        faint_limit_v=p.faint_limit_v, region=cl_region)
    field = sample_field(grid, _rng(seed, _S_FIELD), region=cl_region,
                         density_arcmin2=p.field_density_arcmin2, faint_limit_v=p.faint_limit_v,
                         ebv_per_kpc=p.field_ebv_per_kpc, ebv_max=2.0 * p.ebv,
                         binary_fraction=p.binary_fraction, components=FIELD_COMPONENTS)
    parts = [cluster, field]
    regions: dict[str, SkyRegion] = {p.cluster_name: cl_region}
    for k, name in enumerate(sorted({f["target"] for f in frames if f["kind"] == "standard"})):
        visits = [f for f in frames if f["target"] == name]
        ras, decs = _footprint(visits, p)
        nominal = STANDARD_FIELDS[name]
        reg = region_around(name, nominal[0], nominal[1], ras, decs, margin)
        regions[name] = reg
        rng = _rng(seed, _S_STANDARDS, k)
        stds = choose_standards(grid, rng, p.n_standards_per_field, v_range=p.standard_v_range,
                                bv_range=p.standard_bv_range)
        parts.append(_place_standards(stds, visits, p, rng, name))
        parts.append(sample_field(grid, rng, region=reg,
                                  density_arcmin2=p.standard_field_density_arcmin2,
                                  faint_limit_v=p.faint_limit_v, ebv_per_kpc=0.03, ebv_max=0.08,
                                  binary_fraction=p.binary_fraction))
    stars = _finish_stars(parts)
    gaia = synthesize_gaia(stars, _rng(seed, _S_GAIA), p.gaia_limit_g)

    det = make_detector(p, _rng(seed, _S_DETECTOR))
    det = dataclasses.replace(det, bias_structure=_f32(det.bias_structure),
                              dark_current=_f32(det.dark_current))
    flats, dead, donuts, flat_info = make_flats(p, _rng(seed, _S_FLAT))
    flats = {f: _f32(v) for f, v in flats.items()}
    td = nt.truth_dir
    for f, v in flats.items():
        write_image(v.astype(np.float32), td / f"flat_{f}.fits", FILTER=f, BUNIT="",
                    COMMENT="true flat, normalised to median 1 over the imaging area")
    write_image(det.bias_structure.astype(np.float32), td / "bias_structure.fits", BUNIT="adu",
                COMMENT="imaging-area bias above the overscan level (bias_level_adu)")
    write_image(det.dark_current.astype(np.float32), td / "dark_current.fits",
                BUNIT="electron/s", COMMENT="dark current incl. hot pixels")
    write_image(det.hot_pixels.astype(np.uint8), td / "hot_pixels.fits",
                COMMENT="1 = hot pixel")
    write_image(dead, td / "dead_pixels.fits",
                COMMENT=f"{DEAD} = dead (response<0.5), {LOW_RESPONSE} = low response")

    settings = RenderSettings(nx=p.nx, ny=p.ny, pixel_scale_arcsec=p.pixel_scale_arcsec,
                              system=system, stamp_enclosed_fraction=p.stamp_enclosed_fraction,
                              stamp_tolerance_e=p.stamp_tolerance_e,
                              stamp_max_half_px=p.stamp_max_half_px)
    maker = _FrameMaker(nt, p, seed, site, det, flats, stars, settings)
    items = list(enumerate(frames))
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(maker, items))
    else:
        results = [maker(it) for it in items]
    for f, (extra, _) in zip(frames, results, strict=True):
        f.update(extra)
    srcs = [s for _, s in results if s is not None]
    sources = vstack(srcs) if srcs else Table()
    sources.meta["description"] = ("stars with centres on each sky frame: 0-based pixel "
                                   "x (column) and y (row), total flux in e- (stamp sum), "
                                   "peak pixel in e- (before flat, without sky), saturated = "
                                   "an ADC-saturated pixel within ~1 FWHM")

    write_table(_frames_table(frames), nt.frames_path)
    write_table(stars, nt.stars_path)
    write_table(sources, nt.sources_path)
    write_table(_standards_catalogue(stars), nt.standards_path)
    write_table(gaia, nt.gaia_path)

    names = {f["filename"] for f in frames}
    for old in nt.raw_dir.glob("sim_*.fits"):
        if old.name not in names:
            old.unlink()
    for old in (nt.truth_dir / "cr").glob("sim_*_cr.fits"):
        if old.name.replace("_cr.fits", ".fits") not in names:
            old.unlink()

    ratios = extinction_ratios(["U", "B", "V", "G", "G_BP", "G_RP"])
    iso = grid.isochrone(p.log_age, p.mh)
    members = stars[stars["is_member"]]
    cool = det.dark_current[~det.hot_pixels]
    counts: dict[str, int] = {}
    for f in frames:
        counts[f["kind"]] = counts.get(f["kind"], 0) + 1
    params = {
        "software": "tgpcore.simulate", "format_version": FORMAT_VERSION,
        "seed": seed, "preset_name": p.name, "preset": p.to_dict(), "site": site.to_dict(),
        "night_date": p.night_date,
        "cluster": {
            "name": p.cluster_name, "ra_deg": p.cluster_ra_deg, "dec_deg": p.cluster_dec_deg,
            "log_age": float(iso.meta["logAge"]), "mh": float(iso.meta["MH"]),
            "log_age_requested": p.log_age, "mh_requested": p.mh,
            "isochrone": f"{iso.meta['source']}, {iso.meta['method']}",
            "distance_pc": p.distance_pc,
            "distance_modulus": 5.0 * math.log10(p.distance_pc) - 5.0,
            "parallax_mas": 1000.0 / p.distance_pc,
            "ebv": p.ebv, "av": ratios["V"] * p.ebv,
            "core_radius_arcmin": p.core_radius_arcmin,
            "tidal_radius_arcmin": p.tidal_radius_arcmin,
            "pmra_masyr": p.cluster_pmra_masyr, "pmdec_masyr": p.cluster_pmdec_masyr,
            "velocity_dispersion_kms": p.cluster_velocity_dispersion_kms,
            "binary_fraction": p.binary_fraction,
            "n_members_rendered": len(members),
            "n_members_in_gaia": int(np.isin(gaia["source_id"], members["star_id"]).sum()),
        },
        "photometric_system": system.to_dict(),
        "extinction": {"law": "F99 (Fitzpatrick 1999)", "rv": 3.1,
                       "per_star": "Gaia G, BP, RP: each star's own A/E(B-V) (Babusiaux et "
                                   "al. 2018 at its intrinsic BP-RP); U, B, V: a_over_ebv",
                       "a_over_ebv": ratios,
                       "a_over_ebv_note": "of a 10000 K star at low extinction",
                       "e_ub_over_e_bv": ratios["U"] - ratios["B"]},
        "detector": {
            "nx": p.nx, "ny": p.ny, "n_overscan": p.n_overscan, "trimsec": det.trimsec,
            "biassec": det.biassec, "gain_e_per_adu": p.gain_e_per_adu,
            "read_noise_e": math.hypot(p.read_noise_e, p.pickup_noise_e),
            "read_noise_adu": math.hypot(p.read_noise_e, p.pickup_noise_e) / p.gain_e_per_adu,
            "read_noise_white_e": p.read_noise_e, "pickup_noise_e": p.pickup_noise_e,
            "pickup_cycles_per_px": p.pickup_cycles_per_px,
            "header_read_noise_e": p.read_noise_e * p.header_read_noise_factor,
            "saturation_adu": p.saturation_adu, "full_well_e": p.full_well_e,
            "pixel_scale_arcsec": p.pixel_scale_arcsec, "pixel_size_um": p.pixel_size_um,
            "bias_level_adu": p.bias_level_adu, "bias_drift_adu": p.bias_drift_adu,
            "dark_current_e_per_s": float(np.median(cool)),
            "n_hot_pixels": int(det.hot_pixels.sum()),
            "n_dead_pixels": int((dead == DEAD).sum()),
            "n_low_response_pixels": int((dead == LOW_RESPONSE).sum()),
            "cr_rate_per_cm2_s": p.cr_rate_per_cm2_s,
            "dust_donuts": [d.__dict__ for d in donuts], "flats": flat_info,
        },
        "darks": {"exptimes_s": list(p.dark_exptimes_s),
                  "dark_current_e_per_s": float(np.median(cool))},
        "pointing": pointing,
        "regions": {k: r.to_dict() for k, r in regions.items()},
        "counts": {"frames": counts, "stars": len(stars), "members": len(members),
                   "standards": int(stars["is_standard"].sum()), "gaia": len(gaia),
                   "sources": len(sources)},
        "conventions": {
            "pixels": "0-based (numpy) in stars/sources tables: x = column = FITS axis 1 = "
                      "numpy axis 1, pixel i spans i-0.5..i+0.5; WCS CRPIX is FITS 1-based",
            "orientation": "rotation 0: north up (+y), east left (-x)",
            "epoch": "stars.ecsv and gaia.ecsv positions at 2016.0; frames at epoch_jyear",
            "magnitudes": "stars.ecsv U B V G BP RP are apparent standard magnitudes "
                          "(distance + extinction applied)",
            "raw": "ADU = (signal*flat + dark*t + noise + CR)/gain + bias_level_adu + "
                   "bias_structure (imaging area); overscan = bias_level_adu + read noise",
        },
    }
    write_json(params, nt.params_path)
    return nt

