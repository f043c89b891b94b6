"""FITS and HDF5 input/output: atomic writes and header normalisation."""

from tgpcore.io.atomic import atomic_path, atomic_write_bytes
from tgpcore.io.checksum import sha256_file

__all__ = ["atomic_path", "atomic_write_bytes", "sha256_file"]
