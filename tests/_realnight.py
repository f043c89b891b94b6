"""The real NGC 2420 night (CAHA/CAFOS) calibrated to B, V catalogues the way the pipeline
does it, without the flow machinery: the three 60 s frames per band are calibrated (bias +
dome flat; no darks), aligned on one shared reference and stacked; the V stack is solved
against SDSS DR18 from the inventory's position, the B stack (same grid) takes its WCS; the
stacks are measured and their zero points and colour terms fitted against SDSS transformed
to Johnson (Jester et al. 2005)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from tgpcore.astrometry import solve_image
from tgpcore.photcal.apply import calibrate_catalogue
from tgpcore.photcal.observe import fit_reference
from tgpcore.photometry.catalog import measure_stack, merge_bands
from tgpcore.registration import align_to_reference, make_stack, prepare_reference

from _calibrated import build_masters, calibrate_entries

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CAHA = DATA / "ngc2420_caha"
SDSS = DATA / "ngc2420_ref" / "sdss_dr18_ngc2420_gr.csv"
MEMBERS = DATA / "ngc2420_gaia_members" / "NGC_2420_members_edr3.csv"
FRAMES = {"B": ("uamA_0026.fits", "uamA_0027.fits", "uamA_0028.fits"),
          "V": ("uamA_0031.fits", "uamA_0032.fits", "uamA_0033.fits")}


def calibrated_night(tmp_path: Path) -> SimpleNamespace:
    """Calibrate the night's long B and V frames to a calibrated catalogue.

    Returns
    -------
    SimpleNamespace
        ``inv``, ``solve`` (the V stack's plate solution), ``solutions`` (per band),
        ``instrumental`` and ``calibrated`` (tables), ``epoch_mjd``.
    """
    inv, plan, masters = build_masters(CAHA, tmp_path)
    names = {n for v in FRAMES.values() for n in v}
    res = calibrate_entries(inv, plan, masters, tmp_path, names=names)
    assert all(r["status"] == "ok" for r in res.values()), res
    ref = prepare_reference([res[n]["product"] for n in FRAMES["V"]])
    stacks = {}
    for band, frames in FRAMES.items():
        al = [align_to_reference(res[n]["product"], ref) for n in frames]
        assert all(a["status"] == "ok" for a in al), al
        stacks[band] = make_stack(al, ref["shape"], str(tmp_path / f"ngc2420_{band}.fits"))["path"]
    rec = next(r for r in inv.records if Path(r.path).name == FRAMES["V"][0])
    sol = solve_image(stacks["V"], 0.53, rec.ra_deg, rec.dec_deg, reference=str(SDSS),
                      steps=("header", "catalogue"), rotation_deg=-90.0, parity=-1)
    assert sol["status"] == "ok", sol["reason"]
    with fits.open(stacks["B"], mode="update") as hdul:
        hdul[0].header.update(WCS(fits.getheader(stacks["V"])).to_header(relax=True))
    cats = {}
    for band, path in stacks.items():
        m = measure_stack(path, str(tmp_path / f"{band}.ecsv"))
        assert m["status"] == "ok" and m["has_wcs"], m
        cats[band] = Table.read(m["path"])
    inst = merge_bands(cats)
    sols, fails, _ = fit_reference(inst, str(SDSS), bands=("B", "V"))
    assert not fails, fails
    return SimpleNamespace(inv=inv, solve=sol, solutions=sols, instrumental=inst,
                           calibrated=calibrate_catalogue(inst, sols), epoch_mjd=rec.mjd)
