"""Which code made a product: a version of the code each stage runs, for product keys.

A product's key must change when the code that makes it changes, and only then. The key of
each stage's products includes :func:`code_version` of that stage: a digest of the source of
the ``tgpcore`` modules the stage runs, found from the stage's own subpackages by following
their imports (lazy ones included) within ``tgpcore``. So editing the report does not make
the calibration masters stale, and editing ``tgpcore/io/fits.py`` (read by every stage)
makes them all stale. Sources are compared as parsed code, so comments, formatting and
docstrings do not count.

:func:`software_version` is the human-readable version recorded beside each product
(``git describe --always --dirty`` of the checkout when there is one).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path

import tgpcore

PACKAGE = "tgpcore"
ROOT = Path(tgpcore.__file__).resolve().parent.parent  # the folder holding tgpcore/

STAGE_PACKAGES: dict[str, tuple[str, ...]] = {
    "inventory": ("tgpcore.inventory", "tgpcore.instruments"),
    "plan": ("tgpcore.calibration",),
    "calibrate": ("tgpcore.calibration",),
    "register": ("tgpcore.registration",),
    "solve": ("tgpcore.astrometry",),
    "mosaic": ("tgpcore.registration",),
    "photometry": ("tgpcore.photometry",),
    "photcal": ("tgpcore.photcal",),
    "catalogs": ("tgpcore.catalogs",),
    "crossmatch": ("tgpcore.catalogs",),
    "membership": ("tgpcore.membership",),
    "isochrone_fit": ("tgpcore.fitting", "tgpcore.isochrones"),
    "report": ("tgpcore.report", "tgpcore.plots"),
}
"""The subpackages (or modules) each stage runs; their imports are followed from there."""

KIND_STAGES: dict[str, str] = {
    "master_bias": "calibrate", "master_dark": "calibrate", "master_flat": "calibrate",
    "calibrated": "calibrate",
    "stack": "register", "wcs": "solve", "solved_stack": "solve", "mosaic": "mosaic",
    "stack_catalog": "photometry", "instrumental_catalog": "photometry",
    "photcal": "photcal", "photcal_solution": "photcal", "calibrated_catalog": "photcal",
    "photcal_outcome": "photcal",
    "gaia_catalog": "catalogs", "matched_catalog": "crossmatch",
    "members": "membership", "isochrone_fit": "isochrone_fit", "report": "report",
}
"""The stage that makes each product kind. A kind not listed is keyed by all of tgpcore."""

DATA_SUFFIXES = (".toml",)  # rule files read by a stage's package, hashed with its code


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_files(root: Path, name: str) -> list[Path]:
    """The module's file, or every module and rule file of a package."""
    base = root.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return sorted(p for p in base.rglob("*")
                      if p.suffix in (".py", *DATA_SUFFIXES) and "__pycache__" not in p.parts)
    path = _module_file(root, name)
    return [path] if path is not None else []


@functools.lru_cache(maxsize=4096)
def _analyse(path: Path) -> tuple[tuple[tuple[int, str], ...], str]:
    """A module's imports, as (relative level, module name) pairs (``from m import a``
    also gives ``m.a``, which may be a submodule), and its code without comments, layout or
    docstrings (:func:`ast.dump`)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    names: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((0, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names.add((node.level, module))
            names.update((node.level, f"{module}.{a.name}".lstrip(".")) for a in node.names)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
    return tuple(sorted(names)), ast.dump(tree)


@functools.lru_cache(maxsize=4096)
def _imports(root: Path, path: Path) -> frozenset[str]:
    """The tgpcore modules a file imports (absolute or relative, at any depth in the code)."""
    package = _module_name(root, path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = set()
    for level, name in _analyse(path)[0]:
        if level:
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - level + 1])
            name = f"{base}.{name}" if name else base
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                if _module_file(root, ".".join(parts[:i])) is not None:
                    found.add(".".join(parts[:i]))
    return frozenset(found)


def stage_files(stage: str | None, root: Path | None = None) -> list[Path]:
    """The files whose code a stage runs: its packages and every tgpcore module they import,
    transitively. ``None`` (or an unknown stage): every file of tgpcore."""
    root = ROOT if root is None else Path(root)
    if stage not in STAGE_PACKAGES:
        return _package_files(root, PACKAGE)
    todo = [root / PACKAGE / "__init__.py"]
    for name in STAGE_PACKAGES[stage]:
        todo += _package_files(root, name)
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.suffix == ".py":
            for name in _imports(root, path):
                todo += [p for p in [_module_file(root, name)] if p is not None]
    return sorted(seen)


def _digest(root: Path, paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.relative_to(root).as_posix()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        if path.suffix == ".py":
            h.update(_analyse(path)[1].encode())
        else:
            h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


@functools.cache
def _stage_version(stage: str | None, root: Path) -> str:
    return _digest(root, stage_files(stage, root))[:16]


def stage_of(kind: str) -> str | None:
    """The stage that makes a product kind (``master_flat`` → ``calibrate``), or None."""
    if kind in STAGE_PACKAGES:
        return kind
    return KIND_STAGES.get(kind)


def code_version(kind_or_stage: str, root: str | Path | None = None) -> str:
    """Version of the code that makes a product kind (or runs a stage): 16 hex digits.

    Parameters
    ----------
    kind_or_stage : str
        A product kind (``'master_flat'``, ``'mosaic'``, …) or a stage name
        (``'calibrate'``, …). Unknown ones get the version of all of tgpcore.
    root : str or Path, optional
        Folder holding the ``tgpcore`` package to read (this package's by default).

    Returns
    -------
    str
        The same for the same code, whichever folder or machine it is read on; it changes
        when a module the stage runs changes (not its comments or docstrings).
    """
    return _stage_version(stage_of(kind_or_stage), Path(ROOT if root is None else root).resolve())


@functools.lru_cache(maxsize=1)
def software_version() -> str:
    """The package version, with ``git describe --always --dirty`` of the checkout tgpcore
    is run from when it is one (``0.1.0+bd93aa0-dirty``); an installed copy gives the
    package version alone."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != ROOT:
            return tgpcore.__version__  # installed inside some other repository
        described = git("describe", "--always", "--dirty")
    except (OSError, subprocess.SubprocessError):
        return tgpcore.__version__
    return f"{tgpcore.__version__}+{described}" if described else tgpcore.__version__
