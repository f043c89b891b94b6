"""Figures drawn by forked children (the command lines' speed-up) come out as drawn in-process,
and a child's failure is the command's failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _draw(result, out_dir, names=()):
    for name in names:
        (Path(out_dir) / name).write_text(f"{name}={result}")


def _fail(result, out_dir, names=()):
    raise ValueError("no figure today")


def _in_fresh_process(code: str) -> None:
    """Run ``code`` in a new interpreter, as a command line runs: pytest's own process holds
    the threads and fork handlers of every earlier test, and a child forked from it may not
    start cleanly (the command lines never fork from such a process)."""
    prelude = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
               "from tgpcore.plots.child import FigureChildren; import pytest; "
               "T = 'test_plots_child'\n")
    res = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert res.returncode == 0, res.stderr


def test_children_draw_their_part_of_what_the_parent_sends(tmp_path):
    _in_fresh_process(f"""
children = FigureChildren(T + ":_draw", {str(tmp_path)!r}, [("a", "b"), ("c",)])
assert len(children.children) == 2
children.draw({{"members": 3}})
children.wait(timeout=120)
""")
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "a": "a={'members': 3}", "b": "b={'members': 3}", "c": "c={'members': 3}"}


def test_a_failed_child_fails_the_wait_and_a_cancel_draws_nothing(tmp_path):
    _in_fresh_process(f"""
children = FigureChildren(T + ":_fail", {str(tmp_path)!r}, [("a",)])
children.draw(1)
with pytest.raises(RuntimeError, match="figures of .* failed"):
    children.wait(timeout=120)
cancelled = FigureChildren(T + ":_draw", {str(tmp_path)!r}, [("a",), ("b",)])
cancelled.cancel(timeout=120)
assert all(proc.exitcode == 0 for proc, _ in cancelled.children)
""")
    assert list(tmp_path.iterdir()) == []


def test_a_child_that_hangs_is_killed_at_the_timeout(tmp_path):
    _in_fresh_process(f"""
children = FigureChildren(T + ":_draw", {str(tmp_path)!r}, [("a",)])
with pytest.raises(RuntimeError, match="failed"):
    children.wait(timeout=0.5)          # nothing was sent: the child waits for ever
assert not children.children[0][0].is_alive()
""")


def test_membership_figures_from_children_are_the_in_process_ones(tmp_path):
    """The M67 cone's four figures, byte for byte, drawn by two children or in-process (in a
    fresh interpreter: a command line's single-threaded process, where the children fork)."""
    cat = ROOT.parent / "shared" / "data" / "gaia_m67" / "NGC2682_M67-result.csv"
    if not cat.exists():
        pytest.skip("shared M67 cone not available")
    code = f"""
from pathlib import Path
from tgpcore.plots.child import membership_figure_children
out = Path({str(tmp_path)!r})
children = membership_figure_children(out / "children")
assert children is not None
(out / "children").mkdir()
from tgpcore.catalogs.columns import MEMBERSHIP_REQUIRED
from tgpcore.catalogs.files import read_catalog_file
from tgpcore.membership.finder import find_members
from tgpcore.membership.run import membership_config
from tgpcore.plots.membership import membership_figures
result = find_members(read_catalog_file({str(cat)!r}, MEMBERSHIP_REQUIRED),
                      config=membership_config({{"n_boot": 5, "n_boot_king": 5}}))
children.draw(result)
here = membership_figures(result, out / "here")
children.wait()
print(sorted(p.name for p in here.values()))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert res.returncode == 0, res.stderr
    names = sorted(p.name for p in (tmp_path / "here").iterdir())
    assert len(names) == 4 and res.stdout.strip() == str(names)
    for name in names:
        assert ((tmp_path / "children" / name).read_bytes()
                == (tmp_path / "here" / name).read_bytes()), name
