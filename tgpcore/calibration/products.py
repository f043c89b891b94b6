"""Calibration products, file to file: what the calibration stage's tasks call.

Each function reads its inputs from disk, writes one product atomically and returns a small
summary (path, QC figures, notes). Nothing here knows about Prefect or the run database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tgpcore.calibration.apply import calibrate_frame
from tgpcore.calibration.detector import DetectorSetup, reconcile_read_noise
from tgpcore.calibration.masters import (
    CalibrationError,
    FrameInput,
    build_master_bias,
    build_master_dark,
    build_master_flat,
    load_master,
)
from tgpcore.io.atomic import is_disk_full
from tgpcore.io.checksum import sha256_file
from tgpcore.io.fits import provenance, write_ccd


def make_master(kind: str, key: str, members: list[dict[str, Any]], out_path: str,
                bias_path: str | None = None, dark_path: str | None = None,
                threads: int = 1) -> dict[str, Any]:
    """Build and write one master frame.

    Parameters
    ----------
    kind : {'bias', 'dark', 'flat'}
    key : str
        The master's plan key (written to the header as TGPKEY).
    members : list of dict
        ``FrameInput`` fields of the member frames.
    out_path : str
        Where to write the master (atomically).
    bias_path, dark_path : str, optional
        Masters this one depends on.
    threads : int
        Threads sharing the combination: for a master built while nothing else can run (the
        same master, sooner).
    """
    frames = [FrameInput(**m) for m in members]
    setup = DetectorSetup.from_summary(frames[0].summary)
    bias = load_master(bias_path)
    dark = load_master(dark_path)
    notes: list[str] = []
    if bias is not None:
        # the read noise the biases showed, where the header's is off (as for the frames)
        setup, note = reconcile_read_noise(setup, bias.header.get("RNMEAS"))
        if note:
            notes.append(note)
    if kind == "bias":
        result = build_master_bias(frames, setup, threads=threads)
    elif kind == "dark":
        result = build_master_dark(frames, setup, bias, threads=threads)
    elif kind == "flat":
        result = build_master_flat(frames, setup, bias, dark, threads=threads)
    else:
        raise ValueError(f"unknown master kind {kind!r}")
    result.ccd.header["TGPKEY"] = (key[:68], "tgp master key")
    if bias_path:
        provenance(result.ccd.header, "input", f"master bias {Path(bias_path).name}")
    if dark_path:
        provenance(result.ccd.header, "input", f"master dark {Path(dark_path).name}")
    write_ccd(result.ccd, out_path)
    return {"key": key, "kind": kind, "path": out_path, "checksum": sha256_file(out_path),
            "qc": result.qc, "notes": notes + result.notes}


def make_calibrated(frame: dict[str, Any], out_path: str, bias_path: str | None,
                    dark_path: str | None, flat_path: str | None,
                    cosmic_rays: bool = True) -> dict[str, Any]:
    """Calibrate one science or standard frame and write it (electrons, UNCERT, MASK, FLAGS).

    Returns ``status`` 'ok' with the path and QC, or 'rejected' with the reason: a bad frame
    is reported, never raised, so that the rest of the night goes on.
    """
    fi = FrameInput(**frame)
    # The masters and the product's folder are the run's, not the frame's: when they fail
    # (a master deleted, a full disk, no permission), the exception propagates and the stage
    # fails; the frame is not rejected for it.
    bias, dark, flat = load_master(bias_path), load_master(dark_path), load_master(flat_path)
    try:
        setup = DetectorSetup.from_summary(fi.summary)
        notes = []
        if bias is not None:
            setup, note = reconcile_read_noise(setup, bias.header.get("RNMEAS"))
            if note:
                notes.append(note)
        result = calibrate_frame(fi, setup, bias, dark, flat, cosmic_rays=cosmic_rays)
    except (CalibrationError, ValueError, OSError) as exc:
        if is_disk_full(exc) or isinstance(exc, PermissionError) \
                and str(fi.path) not in str(exc):
            raise
        reason = str(exc) if str(fi.path) in str(exc) else f"{fi.path}: {exc}"
        return {"path": fi.path, "status": "rejected", "reason": reason, "qc": {},
                "notes": []}
    write_ccd(result.ccd, out_path, flags=result.flags)
    return {"path": fi.path, "status": "ok", "product": out_path,
            "checksum": sha256_file(out_path), "qc": result.qc,
            "notes": notes + result.notes, "read_noise_e": setup.read_noise_e}
