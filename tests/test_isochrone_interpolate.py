"""Interpolation of isochrones between grid points along equivalent evolutionary points."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from tgpcore.isochrones import IsochroneInterpolator, load_grid
from tgpcore.simulate.population import draw_systems


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    return load_grid(cache_dir=tmp_path_factory.mktemp("isocache"))


@pytest.fixture(scope="module")
def interp(grid):
    return IsochroneInterpolator(grid, bands=("U", "B", "V", "G", "G_BP", "G_RP"))


def _curve_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of each point of a to the polyline b, in (5 x colour, magnitude)."""
    A, B = a * [5.0, 1.0], b * [5.0, 1.0]
    d = np.full(len(A), np.inf)
    for p, q in zip(B[:-1], B[1:], strict=True):
        v = q - p
        t = np.clip(((A - p) @ v) / max(v @ v, 1e-30), 0.0, 1.0)
        d = np.minimum(d, np.hypot(*(A - (p + t[:, None] * v)).T))
    return d


def test_interpolation_reproduces_grid_nodes(grid, interp):
    """At a node the interpolated isochrone lies on the node's own track (to 0.002 mag)."""
    for age, mh in ((8.04, -0.2), (9.6, 0.05)):
        node = grid.isochrone(age, mh)
        node = node[(node["label"] <= 7) & (node["V"] < 10)]
        arr = interp.eep_arrays(age, mh)
        d = _curve_distance(np.column_stack([node["B"] - node["V"], node["V"]]),
                            np.column_stack([arr["B"] - arr["V"], arr["V"]]))
        assert np.median(d) < 0.002 and np.percentile(d, 95) < 0.03, (age, mh)
        assert np.all(np.diff(arr["Mini"]) >= 0)


def test_leave_one_out_accuracy(grid, interp):
    """Half-way between nodes two steps apart (0.24 dex, 0.5 dex: twice the real spacing)
    the interpolated track stays near the real node: median distance of the main sequence and
    giants < 0.03 mag (5 x colour, magnitude metric) for ages 7.5-9.8."""
    ages, mhs = grid.ages(), grid.metallicities()
    med = []
    for ai in range(13, 33, 3):
        for mi in (7, 8, 9):
            truth = grid.isochrone(ages[ai], mhs[mi])
            truth = truth[(truth["label"] <= 7) & (truth["V"] < 8)]
            for (a1, m1), (a2, m2) in (((ai - 1, mi), (ai + 1, mi)), ((ai, mi - 1), (ai, mi + 1))):
                mid = 0.5 * (interp._node(a1, m1) + interp._node(a2, m2))
                ok = np.isfinite(mid[:, 0])
                cols = interp.columns
                b, v = mid[ok, cols.index("B")], mid[ok, cols.index("V")]
                d = _curve_distance(np.column_stack([truth["B"] - truth["V"], truth["V"]]),
                                    np.column_stack([b - v, v]))
                med.append(np.median(d))
    med = np.array(med)
    assert np.median(med) < 0.015 and np.max(med) < 0.06, med


def test_interpolated_isochrone_is_continuous_in_age(interp):
    """Turn-off magnitude moves smoothly and monotonically with age between nodes."""
    ages = np.linspace(9.0, 9.3, 16)
    to = []
    for a in ages:
        arr = interp.eep_arrays(a, 0.0)
        ms = arr["label"] <= 1
        to.append(np.min(arr["V"][ms][arr["Mini"][ms] > 0.9]))
    steps = np.diff(to)
    assert np.all(steps > 0), steps  # older: fainter turn-off
    assert np.max(steps) < 3 * np.median(steps)


def test_interpolated_isochrone_table_feeds_the_simulator(interp):
    iso = interp.isochrone(9.13, -0.17)
    assert iso.meta["method"].startswith("EEP interpolation")
    assert_allclose(iso["logAge"], 9.13)
    g = interp.as_grid(9.13, -0.17)
    assert g.nearest(9.13, -0.17) == (9.13, -0.17)
    sys_ = draw_systems(g.isochrone(9.13, -0.17), 500, np.random.default_rng(1), 0.3)
    assert len(sys_["mini"]) > 400 and np.all(np.isfinite(sys_["V"]))
    with pytest.raises(KeyError):
        IsochroneInterpolator(interp.grid, bands=("X",))
