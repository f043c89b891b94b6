"""Local astrometry.net (``solve-field``) with scale and position hints; skipped if absent."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from tgpcore.astrometry.solution import Solution


def solve_field(req, timeout_s: float = 110.0, executable: str = "solve-field",
                radius_deg: float | None = None) -> Solution:
    """Solve the request's star list with a local ``solve-field``.

    Parameters
    ----------
    req : SolveRequest
        Stars (x, y), image shape, pixel scale and optional position hint.
    timeout_s : float
        Wall-clock limit of the process (``--cpulimit`` is set too).
    executable : str
        Name or path of ``solve-field``.
    radius_deg : float, optional
        Search radius around the hint (default: the request's search radius).

    Returns
    -------
    Solution
        Failed (with the reason) when ``solve-field`` is not installed or finds nothing.
    """
    exe = shutil.which(executable)
    if exe is None:
        return Solution.failed("solve-field", "solve-field not installed (astrometry.net)")
    t0 = time.perf_counter()
    ny, nx = req.shape
    with tempfile.TemporaryDirectory(prefix="tgp-solvefield-") as tmp:
        xyls = Path(tmp) / "stars.xyls"
        Table({"X": req.xy[:, 0] + 1.0, "Y": req.xy[:, 1] + 1.0,
               "FLUX": np.arange(len(req.xy), 0, -1, dtype=float)}).write(xyls, format="fits")
        cmd = [exe, str(xyls), "--no-plots", "--overwrite", "--dir", tmp,
               "--width", str(nx), "--height", str(ny), "--sort-column", "FLUX",
               "--scale-units", "arcsecperpix", "--scale-low", f"{req.scale_arcsec * 0.95:.4f}",
               "--scale-high", f"{req.scale_arcsec * 1.05:.4f}",
               "--cpulimit", str(int(timeout_s)), "--new-fits", "none", "--corr", "none",
               "--rdls", "none", "--match", "none", "--solved", "none", "--index-xyls", "none"]
        if req.hint_ra is not None and req.hint_dec is not None:
            radius = radius_deg if radius_deg is not None else req.search_radius_arcmin / 60.0
            cmd += ["--ra", f"{req.hint_ra:.6f}", "--dec", f"{req.hint_dec:.6f}",
                    "--radius", f"{max(radius, 0.5):.3f}"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return Solution.failed("solve-field", f"timed out after {timeout_s:g} s")
        wcs_file = Path(tmp) / "stars.wcs"
        if not wcs_file.exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            return Solution.failed("solve-field", f"not solved (exit {proc.returncode}: "
                                   f"{tail[0][:200]})")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(fits.getheader(wcs_file))
    return Solution(ok=True, solver="solve-field", wcs=wcs, seconds=time.perf_counter() - t0,
                    notes=["astrometry.net solve-field"])
