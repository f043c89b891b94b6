"""Write files under a temporary name and rename them into place.

A crash (or a killed worker) therefore never leaves a half-written product at its final path:
either the old file (or nothing) is there, or the complete new one is. With ``TGP_FSYNC`` set,
each file is also flushed to disk before the rename (see :func:`tgpcore.settings.durable_writes`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tgpcore.settings import durable_writes

# Errors that mean the file system has no room (or no quota) left for the product.
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """No space (or quota) left while writing a product; nothing was left at its path.

    An :class:`OSError` with the original ``errno``, so callers that handle ``OSError`` still
    do; the message names the product and the space left on its file system.
    """


def _free_space(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 1e6:.1f} MB free"
    except OSError:
        return "free space unknown"


#: Words of the messages that say "no room", whatever raised them (astropy's "Not enough
#: space on disk" carries no errno; SQLite says "database or disk is full").
NO_SPACE_WORDS = ("no space left", "not enough space", "disk is full", "disk full",
                  "quota exceeded", "file too large")
#: Below this much free space, a failed write is taken for a full disk whatever it said.
LOW_SPACE_BYTES = 1_000_000


#: A short write without an errno (numpy's ``tofile``, as astropy writes FITS data).
SHORT_WRITE = re.compile(r"\b\d+ requested and \d+ written\b")


def is_disk_full(exc: BaseException, folder: str | os.PathLike | None = None) -> bool:
    """Whether an exception (of any kind) means the file system is out of space or quota.

    By its errno (``ENOSPC``, ``EDQUOT``, also on a chained cause), by its message, or, when
    ``folder`` is given, by the space left there (less than :data:`LOW_SPACE_BYTES`).
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, DiskFullError):
            return True
        if getattr(e, "errno", None) in NO_SPACE_ERRNOS:
            return True
        if any(w in str(e).lower() for w in NO_SPACE_WORDS):
            return True
        if SHORT_WRITE.search(str(e)):             # numpy's tofile on a full disk
            return True
        e = e.__cause__ or e.__context__
    if folder is not None:
        try:
            return shutil.disk_usage(folder).free < LOW_SPACE_BYTES
        except OSError:
            return False
    return False


def _disk_full(exc: BaseException, final: Path) -> DiskFullError:
    code = getattr(exc, "errno", None) or errno.ENOSPC
    what = "disk quota exceeded" if code == errno.EDQUOT else "disk full"
    return DiskFullError(code, f"{what} while writing {final} ({_free_space(final.parent)}"
                               f" in {final.parent}); no partial file was left: "
                               f"{getattr(exc, 'strerror', None) or exc}")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` on success.

    The temporary file lives in the same directory, so the rename is atomic on POSIX.
    On any exception the temporary file is removed and the exception propagates; a full disk
    (whatever the exception looks like: :func:`is_disk_full`) is raised as
    :class:`DiskFullError` naming the product.

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
        if durable_writes():
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
    except Exception as exc:
        with contextlib.suppress(FileNotFoundError, OSError):
            tmp.unlink()
        if not isinstance(exc, DiskFullError) and is_disk_full(exc, final.parent):
            raise _disk_full(exc, final) from exc
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError, OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(final: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``final`` atomically and return the final path."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_path` (``.<stem>.*.part*``)."""
    name = Path(path).name
    return name.startswith(".") and ".part" in name


def remove_stale_temporaries(root: str | os.PathLike, min_age_s: float = 86400.0) -> list[Path]:
    """Delete temporary files that a killed writer left under ``root``.

    Only files older than ``min_age_s`` go, so the temporaries of writers still at work
    (another run on the same output root) are left alone.

    Parameters
    ----------
    root : path-like
        Folder to clean, recursively (e.g. the output root).
    min_age_s : float
        Minimum age (since last modification) of a temporary file to delete.

    Returns
    -------
    list of Path
        The files deleted.
    """
    import time

    now = time.time()
    removed = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if not is_temporary(path):
                continue
            try:
                if now - path.stat().st_mtime >= min_age_s:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:
                continue
    return removed
