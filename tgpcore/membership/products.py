"""The membership stage's products on disk: ``members.ecsv`` and ``membership.json``."""

from __future__ import annotations

import json
from pathlib import Path

from tgpcore import __version__
from tgpcore.io.atomic import atomic_path, atomic_write_bytes
from tgpcore.io.jsonready import json_ready
from tgpcore.io.tables import write_ecsv
from tgpcore.membership.finder import MembershipResult

MEMBERS_FILE = "members.ecsv"
SUMMARY_FILE = "membership.json"


def write_membership_products(result: MembershipResult, out_dir: str | Path,
                              source: str | None = None) -> dict[str, Path]:
    """Write ``members.ecsv`` (every input star with its probability) and ``membership.json``.

    Parameters
    ----------
    result : MembershipResult
        Output of :func:`tgpcore.membership.finder.find_members`.
    out_dir : str or Path
        Folder (created); files are written atomically.
    source : str, optional
        The input's name, recorded in both files.

    Returns
    -------
    dict
        ``{"members": path, "summary": path}``.
    """
    out = Path(out_dir)
    members = result.members.copy(copy_data=False)
    members.meta.update({"description": "cluster membership of every input star (tgp)",
                         "status": result.status, "message": result.message,
                         "input": source or "", "software_version": __version__,
                         "config": json_ready(result.config.to_dict())})
    members_path = out / MEMBERS_FILE
    with atomic_path(members_path) as tmp:
        write_ecsv(members, tmp)
    summary = {"input": source, "software_version": __version__, **result.summary(),
               "config": result.config.to_dict()}
    summary_path = atomic_write_bytes(
        out / SUMMARY_FILE,
        json.dumps(json_ready(summary), indent=2, allow_nan=False).encode() + b"\n")
    return {"members": members_path, "summary": summary_path}
