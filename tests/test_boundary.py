"""The boundary: tgpcore, the science library, never imports Prefect, flows or tasks; not at
the top of a module, not inside a function, not by importlib."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tgpcore

FORBIDDEN = ("prefect", "flows", "tasks")
PACKAGE_DIR = Path(tgpcore.__file__).resolve().parent


def forbidden_imports(path: Path) -> list[str]:
    """``line: module`` of every import of a forbidden package in a Python file."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call):  # importlib.import_module("x"), __import__("x")
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if (name in ("import_module", "__import__") and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                names = [node.args[0].value]
        found += [f"{node.lineno}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    return found


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_scan_finds_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import numpy\nimport prefect.tasks\n"
                   "def f():\n    from flows.session import RunSession\n"
                   "    import importlib\n    importlib.import_module('tasks.report')\n"
                   "from tgpcore.io import fits\nfrom .tasks import x\n")
    assert forbidden_imports(bad) == ["2: prefect.tasks", "4: flows.session", "6: tasks.report"]


def test_no_tgpcore_module_imports_prefect_flows_or_tasks() -> None:
    sources = _sources()
    assert len(sources) > 100, "the whole library is scanned"
    bad = {str(p.relative_to(PACKAGE_DIR.parent)): hits for p in sources
           if (hits := forbidden_imports(p))}
    assert bad == {}


IMPORT_ALL = """
import importlib, json, pkgutil, sys
import tgpcore
names = ["tgpcore", *(m.name for m in pkgutil.walk_packages(tgpcore.__path__, "tgpcore."))]
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {forbidden})
print(json.dumps({{"modules": names, "loaded": loaded}}))
"""


@pytest.mark.slow
def test_importing_all_of_tgpcore_loads_no_orchestration() -> None:
    code = IMPORT_ALL.format(forbidden=set(FORBIDDEN))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, cwd=PACKAGE_DIR.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    n_files = sum(1 for p in _sources() if "migrations" not in p.parts)
    assert len(result["modules"]) == n_files, "every module (migrations aside) was imported"
    assert result["loaded"] == []
