"""Stacking straight onto another grid (TargetGrid) equals stacking onto the reference grid
and moving the result, for a whole-pixel shift (where bilinear resampling is exact).

Tolerance: data and uncertainty equal to float32 rounding (1e-5 relative) where covered, with
pixel weights, no masked pixel and all frames overlapping (with frame weights or masks, each frame's sky estimate
samples a different grid, so the levels differ by a fraction of the noise); the mask moves
with the grid.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from tgpcore.io.fits import write_ccd
from tgpcore.registration import StackMember, TargetGrid, stack_frames


def _frames(tmp_path, n=4, shape=(60, 80), masked=True):
    rng = np.random.default_rng(5)
    paths = []
    for k in range(n):
        data = (rng.normal(100.0, 5.0, shape)).astype(np.float32)
        mask = np.zeros(shape, bool)
        if masked:
            mask[rng.integers(0, shape[0], 5), rng.integers(0, shape[1], 5)] = True
        ccd = CCDData(data, unit=u.electron, mask=mask,
                      uncertainty=StdDevUncertainty(np.full(shape, 5.0, np.float32)),
                      header=fits.Header({"EXPTIME": 10.0}))
        p = tmp_path / f"f{k}.fits"
        write_ccd(ccd, p)
        paths.append(str(p))
    return paths


MOVE = [[1, 0, 7], [0, 1, 4], [0, 0, 1]]


def _members(paths):
    shifts = [(0, 0), (1, 0), (0, -2), (2, 1)]
    return [StackMember(p, [[1, 0, dx], [0, 1, dy], [0, 0, 1]])
            for p, (dx, dy) in zip(paths, shifts, strict=True)]


def test_target_grid_mask_moves(tmp_path):
    members = _members(_frames(tmp_path))
    ref = stack_frames(members, (60, 80), tmp_path / "ref.fits", sigma=100.0)
    out = stack_frames(members, (1, 1), tmp_path / "tgt.fits", sigma=100.0,
                       target=TargetGrid((70, 95), MOVE))
    with fits.open(ref.path) as a, fits.open(out.path) as b:
        assert b[0].data.shape == (70, 95)
        assert (b["MASK"].data[4:64, 7:87] == a["MASK"].data).all()
        assert (b["MASK"].data[:2] != 0).all() and (b["MASK"].data[:, :7] != 0).all()


def test_target_grid_whole_pixel_shift(tmp_path):
    paths = _frames(tmp_path, masked=False)
    members = _members(paths)
    ref = stack_frames(members, (60, 80), tmp_path / "ref.fits", sigma=100.0,
                       weighting="pixel")
    out = stack_frames(members, (1, 1), tmp_path / "tgt.fits", sigma=100.0,
                       weighting="pixel", target=TargetGrid((70, 95), MOVE))
    with fits.open(ref.path) as a, fits.open(out.path) as b:
        assert b[0].data.shape == (70, 95)
        da, db = a[0].data, b[0].data[4:64, 7:87]
        ua, ub = a["UNCERT"].data, b["UNCERT"].data[4:64, 7:87]
        # where all frames overlap (elsewhere each grid's sky estimates weigh in)
        ok = (a["MASK"].data == 0) & (a["EXPMAP"].data == 40.0)
        assert ok.mean() > 0.8
        np.testing.assert_allclose(db[ok], da[ok], rtol=1e-5)
        np.testing.assert_allclose(ub[ok], ua[ok], rtol=1e-5)
