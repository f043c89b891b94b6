"""The member frames of a master, read a band of rows at a time.

A master used to read every member whole into one (n, ny, nx) float32 stack: 255 MB for 15
biases at 2048^2, 1.7 GB for 100 flats, so a worker's memory grew with the number of frames.
:class:`Members` instead maps the files (nothing is read until a band is asked for) and hands
out the overscan-subtracted, trimmed rows ``r0:r1`` of each frame as float32, so that a
master's memory is one band of rows per member whatever the number of frames, and each band is
corrected and combined while it is in the processor's cache.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
from astropy.io import fits

from tgpcore.calibration.detector import DetectorSetup, region_level, section_slices
from tgpcore.io.fits import scale_raw

BAND_BYTES = 16 * 2**20  # a band of every member: in the heap, reused from master to master


class CalibrationError(ValueError):
    """A frame or master cannot be calibrated; the message names the file and the problem."""


class Members:
    """Memory-mapped member frames of one master (use as a context manager).

    Pixels come out as :func:`tgpcore.io.fits.read_raw` gives them (BSCALE and BZERO applied,
    BLANK as NaN), minus each frame's overscan level, trimmed to the profile's section.
    """

    def __init__(self, paths: Sequence[str], hdu_indices: Sequence[int], setup: DetectorSetup):
        self.paths = list(paths)
        self._hduls: list[fits.HDUList] = []
        self._data: list[tuple[np.ndarray, fits.Header]] = []
        self.levels: list[float] = []
        try:
            for path, idx in zip(self.paths, hdu_indices, strict=True):
                self._open(path, idx)
            shape = self._data[0][0].shape if self._data else (0, 0)
            for path, (data, *_) in zip(self.paths, self._data, strict=True):
                if data.shape != shape:
                    raise CalibrationError(f"{path}: raw shape {data.shape} differs from the "
                                           f"other members' {shape}")
            rows, cols = section_slices(setup.trim) if setup.trim else (slice(0, None),) * 2
            self._rows, self._cols = rows, cols
            self.shape = np.empty(shape, bool)[rows, cols].shape   # a view: nothing is read
            for i, path in enumerate(self.paths):
                level = 0.0
                if setup.overscan:
                    region = self._scaled(i, *section_slices(setup.overscan))
                    if region.size == 0:
                        raise CalibrationError(f"{path}: overscan section {setup.overscan} is "
                                               f"empty for an image of shape {shape}")
                    level = region_level(region)
                self.levels.append(level)
        except BaseException:
            self.close()
            raise

    def _open(self, path: str, idx: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdul = fits.open(path, memmap=True, do_not_scale_image_data=True)
        self._hduls.append(hdul)
        try:
            hdu = hdul[idx]
            data = hdu.data
        except (IndexError, KeyError) as exc:
            raise CalibrationError(f"{path}: no HDU {idx}") from exc
        if data is None:
            raise CalibrationError(f"{path}: HDU {idx} has no data")
        data = np.squeeze(data)
        if data.ndim != 2:
            raise CalibrationError(f"{path}: HDU {idx} is not a 2-D image (shape {data.shape})")
        self._data.append((data, hdu.header))

    def _scaled(self, i: int, rows, cols) -> np.ndarray:
        """Frame ``i``'s raw pixels ``[rows, cols]`` as read_raw gives them (float32)."""
        data, header = self._data[i]
        return scale_raw(data[rows, cols], header)

    def _corrected(self, i: int, rows, cols) -> np.ndarray:
        """Frame ``i``'s pixels ``[rows, cols]`` (raw coordinates) minus its overscan level."""
        out = self._scaled(i, rows, cols)
        if self.levels[i]:
            out -= np.float32(self.levels[i])
        return out

    def band(self, i: int, r0: int, r1: int, out: np.ndarray) -> np.ndarray:
        """Trimmed rows ``r0:r1`` of frame ``i``, minus its overscan level, into ``out``.

        Raises
        ------
        CalibrationError
            If the band holds NaN or infinite pixels (naming the file).
        """
        start = self._rows.start
        out[...] = self._corrected(i, slice(start + r0, start + r1), self._cols)
        if not np.isfinite(out).all():
            raise CalibrationError(f"{self.paths[i]}: {int((~np.isfinite(out)).sum())} "
                                   f"non-finite pixels in a calibration frame (rows {r0}-{r1 - 1})")
        return out

    def pixels(self, i: int, flat: np.ndarray) -> np.ndarray:
        """Frame ``i``'s pixels at flat indices ``flat`` of the trimmed image, minus its
        overscan level (as :meth:`band` gives them)."""
        rr, cc = np.divmod(flat, self.shape[1])
        return self._corrected(i, rr + self._rows.start, cc + self._cols.start)

    def band_rows(self) -> int:
        """Rows per band: every member's band in about ``BAND_BYTES`` (8 to 128 rows)."""
        per_row = max(1, len(self.paths)) * self.shape[1] * 4
        return int(np.clip(BAND_BYTES // per_row, 8, 128))

    def bands(self) -> Iterator[tuple[int, int]]:
        """``(r0, r1)`` of the bands covering the trimmed image."""
        rows = self.band_rows()
        for r0 in range(0, self.shape[0], rows):
            yield r0, min(r0 + rows, self.shape[0])

    def close(self) -> None:
        """Unmap every file."""
        self._data.clear()
        for hdul in self._hduls:
            hdul.close()
        self._hduls.clear()

    def __enter__(self) -> Members:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

