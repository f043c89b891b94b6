"""The truth written beside a simulated night, and reading it back.

Layout of ``<root>/truth``::

    truth.json          scalar parameters (seed, preset, cluster, photometric system, ...)
    frames.ecsv         one row per raw file
    stars.ecsv          every rendered star (positions at epoch 2016.0)
    sources.ecsv        every (sky frame, star) pair with the star's centre on the frame
    standards.ecsv      the Landolt-style standards catalogue
    gaia.ecsv           the synthetic Gaia DR3-like catalogue
    flat_<F>.fits       true normalised flat per filter
    bias_structure.fits imaging-area bias above the overscan level (ADU)
    dark_current.fits   dark current (e-/s), hot pixels included
    hot_pixels.fits     uint8, 1 = hot
    dead_pixels.fits    uint8, 1 = dead (response < 0.5), 2 = low response
    cr/<stem>_cr.fits   per exposed frame: CRMASK (uint8 image, RICE) + CRPIX table (x, y, charge_e)
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Row, Table

from tgpcore.io.atomic import atomic_path


@dataclass(frozen=True)
class NightTruth:
    """Where a simulated night and its truth live, with cached readers of the truth tables."""

    root: Path
    raw_dir: Path
    truth_dir: Path
    frames_path: Path
    stars_path: Path
    sources_path: Path
    standards_path: Path
    gaia_path: Path
    params_path: Path

    @classmethod
    def at(cls, root: str | os.PathLike) -> NightTruth:
        """The standard layout under ``root`` (``raw/`` and ``truth/``)."""
        root = Path(root)
        t = root / "truth"
        return cls(root=root, raw_dir=root / "raw", truth_dir=t, frames_path=t / "frames.ecsv",
                   stars_path=t / "stars.ecsv", sources_path=t / "sources.ecsv",
                   standards_path=t / "standards.ecsv", gaia_path=t / "gaia.ecsv",
                   params_path=t / "truth.json")

    def params(self) -> dict[str, Any]:
        """The contents of ``truth.json``."""
        return json.loads(self.params_path.read_text())

    def frames(self) -> Table:
        """``frames.ecsv`` (shared cached table: copy before modifying)."""
        return _read_table(self.frames_path)

    def stars(self) -> Table:
        """``stars.ecsv`` (shared cached table: copy before modifying)."""
        return _read_table(self.stars_path)

    def sources(self) -> Table:
        """``sources.ecsv`` (shared cached table: copy before modifying)."""
        return _read_table(self.sources_path)

    def standards(self) -> Table:
        """``standards.ecsv``."""
        return _read_table(self.standards_path)

    def gaia(self) -> Table:
        """``gaia.ecsv``."""
        return _read_table(self.gaia_path)

    def frame(self, filename: str) -> Row:
        """The ``frames.ecsv`` row of a raw file name (``sim_0007.fits``)."""
        frames = self.frames()
        hit = np.flatnonzero(frames["filename"] == Path(filename).name)
        if len(hit) != 1:
            raise KeyError(f"no frame {filename!r} in {self.frames_path}")
        return frames[int(hit[0])]

    def raw_path(self, frame: Row | str) -> Path:
        """Path of a raw frame."""
        name = frame if isinstance(frame, str) else frame["filename"]
        return self.raw_dir / str(name)

    def cr_path(self, frame: Row | str) -> Path:
        """Path of a frame's cosmic-ray truth file."""
        name = Path(frame if isinstance(frame, str) else str(frame["filename"])).stem
        return self.truth_dir / "cr" / f"{name}_cr.fits"

    def image(self, name: str) -> np.ndarray:
        """A truth image by name: ``flat_B``, ``bias_structure``, ``dark_current``, ..."""
        return fits.getdata(self.truth_dir / f"{name}.fits")

    def flat(self, filt: str) -> np.ndarray:
        """The true normalised flat of a filter."""
        return self.image(f"flat_{filt}")

    def cosmic_rays(self, frame: Row | str) -> tuple[np.ndarray, Table]:
        """A frame's cosmic-ray mask (uint8, imaging area) and pixel table (x, y, charge_e)."""
        with fits.open(self.cr_path(frame)) as hdul:
            return np.asarray(hdul["CRMASK"].data), Table(hdul["CRPIX"].data)


def load_truth(root: NightTruth | str | os.PathLike) -> NightTruth:
    """A :class:`NightTruth` for a night folder (the one holding ``raw/`` and ``truth/``)."""
    if isinstance(root, NightTruth):
        return root
    nt = NightTruth.at(root)
    if not nt.params_path.exists():
        raise FileNotFoundError(f"no simulated night at {root} (missing {nt.params_path})")
    return nt


@functools.lru_cache(maxsize=16)
def _read_cached(path: str, mtime_ns: int, size: int) -> Table:
    return Table.read(path, format="ascii.ecsv")


def _read_table(path: Path) -> Table:
    st = path.stat()
    return _read_cached(str(path), st.st_mtime_ns, st.st_size)


def write_image(data: np.ndarray, path: Path, **cards: Any) -> Path:
    """Write an image as a primary HDU atomically, with optional header cards."""
    hdu = fits.PrimaryHDU(data=data)
    for k, v in cards.items():
        hdu.header[k] = v
    with atomic_path(path) as tmp:
        hdu.writeto(tmp)
    return path


def write_cosmic_rays(path: Path, shape: tuple[int, int], y: np.ndarray, x: np.ndarray,
                      charge_e: np.ndarray, n_events: int) -> Path:
    """Write a frame's cosmic-ray truth: RICE-compressed uint8 mask and the pixel table."""
    mask = np.zeros(shape, dtype=np.uint8)
    mask[y, x] = 1
    table = fits.BinTableHDU(Table({"x": x.astype(np.int32), "y": y.astype(np.int32),
                                    "charge_e": charge_e.astype(np.float32)}), name="CRPIX")
    primary = fits.PrimaryHDU()
    primary.header["NCREVENT"] = (n_events, "cosmic-ray events")
    primary.header["NCRPIX"] = (len(x), "pixels hit (>= 10 e-)")
    hdul = fits.HDUList([primary, fits.CompImageHDU(mask, compression_type="RICE_1",
                                                    name="CRMASK"), table])
    with atomic_path(path) as tmp:
        hdul.writeto(tmp)
    return path


def write_json(data: dict[str, Any], path: Path) -> Path:
    """Write JSON atomically (sorted keys, stable formatting)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
