"""Path parameters that come from outside (the Prefect UI, an API call) may only write under
the configured output root (``TGP_OUT_ROOT``, else ``./tgp-out`` of the worker), and only read
under the configured data root (``TGP_DATA_ROOT``, else ``TGP_INBOX``, else the worker's
working directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.settings import default_out_root


def configured_out_root() -> Path:
    """The output root this process is configured with, resolved."""
    return Path(default_out_root()).expanduser().resolve()


def check_inside(path: str | Path, root: str | Path) -> Path:
    """Resolve ``path`` (symbolic links followed) and check that it lies inside ``root``.

    Parameters
    ----------
    path : str or Path
        The path given.
    root : str or Path
        The folder it must be in (or be).

    Returns
    -------
    Path
        The resolved path.

    Raises
    ------
    ValueError
        If it lies outside ``root``.
    """
    resolved, base = Path(path).expanduser().resolve(), Path(root).expanduser().resolve()
    if resolved != base and base not in resolved.parents:
        raise ValueError(f"{path} is outside the output root {base}")
    return resolved


ENV_DATA_ROOT = "TGP_DATA_ROOT"
#: Parameters naming files or folders that are read (anywhere in a parameter model).
INPUT_FIELDS = frozenset({"data", "inbox", "profile", "grouping", "plan_rules", "gaia_file",
                          "members", "reference_catalog", "photometric_reference",
                          "standards_catalog", "transformation", "isochrones", "catalog"})
#: Parameters naming files or folders that are written.
OUTPUT_FIELDS = frozenset({"out", "out_root", "cache_dir"})


def configured_data_root() -> Path:
    """The folder deployments may read from: ``TGP_DATA_ROOT``, else ``TGP_INBOX``, else the
    worker's working directory; resolved."""
    import os

    root = (os.environ.get(ENV_DATA_ROOT, "").strip() or os.environ.get("TGP_INBOX", "").strip()
            or ".")
    return Path(root).expanduser().resolve()


def _is_path_value(name: str, value: str) -> bool:
    """Whether a parameter's value names a file (not a service spec or a packaged name)."""
    if ":" in value.split("/")[0] and not Path(value).exists():    # vizier:..., http://...
        return False
    if name in ("profile", "transformation", "isochrones") and "/" not in value \
            and not value.endswith((".toml", ".dat", ".h5", ".hdf5", ".ecsv", ".csv")):
        return False                                                 # a packaged name
    return True


def _path_parameters(model: Any, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, value, 'input'|'output') of every path parameter in ``model``."""
    from pydantic import BaseModel

    found = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        dotted = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            found += _path_parameters(value, dotted + ".")
        elif isinstance(value, str) and value and _is_path_value(name, value):
            if name in INPUT_FIELDS:
                found.append((dotted, value, "input"))
            elif name in OUTPUT_FIELDS:
                found.append((dotted, value, "output"))
    return found


def confine_parameters(model: Any, data_root: str | Path | None = None,
                       out_root: str | Path | None = None,
                       relative_to: str | Path | None = None) -> None:
    """Check that every path parameter of ``model`` lies inside its root: inputs inside the
    data root (``TGP_DATA_ROOT``), outputs inside the output root (``TGP_OUT_ROOT``).

    Nothing is opened: a refused parameter's error names the parameter and the root, never
    the file's contents. ``relative_to`` resolves relative input paths (e.g. a night folder).

    Raises
    ------
    ValueError
        Naming the first parameter outside its root.
    """
    data_root = Path(data_root).resolve() if data_root else configured_data_root()
    out_root = Path(out_root).resolve() if out_root else configured_out_root()
    for dotted, value, kind in _path_parameters(model):
        root = data_root if kind == "input" else out_root
        path = Path(value).expanduser()
        if relative_to is not None and not path.is_absolute():
            path = Path(relative_to) / path
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            what = "data root (TGP_DATA_ROOT)" if kind == "input" else \
                "output root (TGP_OUT_ROOT)"
            raise ValueError(f"parameter {dotted!r} ({value}) is outside the {what} {root}")
