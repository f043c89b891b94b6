"""Code versions in product keys (tgpcore.provenance): a change of a stage's code changes the
keys of that stage's products, and of no unrelated stage; the same code gives the same key,
wherever and in whichever process it is computed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tgpcore import provenance
from tgpcore.io.checksum import product_key
from tgpcore.provenance import KIND_STAGES, ROOT, STAGE_PACKAGES, code_version, stage_files

STAGES = sorted(STAGE_PACKAGES)


def _copy(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(ROOT / "tgpcore", root / "tgpcore",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def _versions(root: Path | None) -> dict[str, str]:
    return {s: code_version(s, root) for s in STAGES}


def _changed_by(tmp_path: Path, module: str, code: str) -> tuple[set[str], Path]:
    """Stages whose version changes when ``code`` is appended to ``module`` (a path under
    tgpcore/) of a copy of the package; and the copy's root."""
    before = _versions(_copy(tmp_path, "before"))
    root = _copy(tmp_path, "after")
    path = root / "tgpcore" / module
    path.write_text(path.read_text() + "\n\n" + code + "\n")
    after = _versions(root)
    return {s for s in STAGES if after[s] != before[s]}, root


def _users(root: Path, module: str) -> set[str]:
    return {s for s in STAGES if root / "tgpcore" / module in stage_files(s, root)}


def test_same_code_same_version_anywhere(tmp_path: Path) -> None:
    here = _versions(None)
    assert _versions(_copy(tmp_path, "copy")) == here, "a copy of the code is the same code"
    assert len(set(here.values())) >= 9, "stages running different code differ"
    script = ("from tgpcore.io.checksum import product_key; "
              "print(product_key('master_flat', {'members': ['a']}, {'x': 1}, '0.1.0'))")
    out = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True).stdout.strip() for _ in range(2)}
    assert out == {product_key("master_flat", {"members": ["a"]}, {"x": 1}, "0.1.0")}


def test_a_stage_module_change_changes_its_stage_only(tmp_path: Path) -> None:
    # a change of code (not a comment) in the calibration's combine module
    changed, root = _changed_by(tmp_path, "calibration/combine.py", "_PROVENANCE_TEST = 1")
    assert changed == {"calibrate", "plan"}
    assert _users(root, "calibration/combine.py") == changed


def test_report_change_leaves_calibration_alone(tmp_path: Path) -> None:
    report = sorted((ROOT / "tgpcore" / "report").glob("*.py"))[-1].name
    changed, _ = _changed_by(tmp_path, f"report/{report}",
                             "def _provenance_test():\n    return 2")
    assert changed == {"report"}


def test_shared_module_change_reaches_every_stage_using_it(tmp_path: Path) -> None:
    changed, root = _changed_by(tmp_path, "io/fits.py", "_PROVENANCE_TEST = 3")
    assert {"calibrate", "register", "mosaic", "photometry"} <= changed
    assert changed == _users(root, "io/fits.py")


def test_comments_and_docstrings_do_not_count(tmp_path: Path) -> None:
    before = _versions(_copy(tmp_path, "before"))
    root = _copy(tmp_path, "after")
    masters = root / "tgpcore" / "calibration" / "masters.py"
    text = masters.read_text()
    doc_end = text.index('"""', 3) + 3  # the module docstring
    masters.write_text('"""Another docstring."""' + text[doc_end:].replace(
        "\n\n", "\n\n# a comment\n\n", 3))
    assert _versions(root) == before


def test_lazy_and_relative_imports_are_followed(tmp_path: Path) -> None:
    root = _copy(tmp_path, "tree")
    pkg = root / "tgpcore" / "calibration"
    (pkg / "zz_lazy.py").write_text(
        "def f():\n    from ..photcal import fit  # noqa\n    from . import masters  # noqa\n")
    files = {p.relative_to(root).as_posix() for p in stage_files("calibrate", root)}
    assert "tgpcore/photcal/fit.py" in files and "tgpcore/photcal/__init__.py" in files
    assert "tgpcore/report/__init__.py" not in files


@pytest.mark.parametrize("kind", sorted(KIND_STAGES))
def test_every_kind_is_keyed_by_its_stage(kind: str) -> None:
    assert code_version(kind) == code_version(KIND_STAGES[kind])
    key = product_key(kind, {"a": 1}, {}, "0.1.0")
    assert key == product_key(kind, {"a": 1}, {}, "0.1.0", stage=KIND_STAGES[kind])
    other = next(s for s in STAGES if code_version(s) != code_version(kind))
    assert key != product_key(kind, {"a": 1}, {}, "0.1.0", stage=other)


def test_unknown_kind_is_keyed_by_all_of_tgpcore() -> None:
    assert len(stage_files(None)) > max(len(stage_files(s)) for s in STAGES)
    assert code_version("no_such_kind") == code_version("another_unknown_kind")


def test_software_version_names_the_checkout() -> None:
    import tgpcore

    v = provenance.software_version()
    if (ROOT / ".git").exists():
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        assert v.startswith(f"{tgpcore.__version__}+") and head[:7] in v, v
    else:
        assert v == tgpcore.__version__
