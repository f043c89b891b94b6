"""Path parameters that come from outside (the Prefect UI, an API call) may only write under
the configured output root (``TGP_OUT_ROOT``, else ``./tgp-out`` of the worker)."""

from __future__ import annotations

from pathlib import Path

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
