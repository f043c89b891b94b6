"""Write files under a temporary name and rename them into place.

A crash (or a killed worker) therefore never leaves a half-written product at its final path:
either the old file (or nothing) is there, or the complete new one is.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` on success.

    The temporary file lives in the same directory, so the rename is atomic on POSIX.
    On any exception the temporary file is removed and the exception propagates.

    Parameters
    ----------
    final : path-like
        Where the finished file must end up. Its parent directory is created.
    suffix : str, optional
        Suffix for the temporary name (defaults to the final suffix, so that libraries
        that sniff the extension, such as astropy's FITS writer, still work).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(final.suffixes) or ".tmp"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".part{suffix}",
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # Let writers that refuse to overwrite an existing file (astropy) create it themselves.
    tmp.unlink()
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"writer produced no file at temporary path {tmp}")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(final: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically and return the final path."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)
