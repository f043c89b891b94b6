"""Folder-layout conventions: the fallback when headers do not say what a frame is.

Each convention is data: a list of (regex on the path relative to the night's root, fixed
values). Named groups in the regex (``filter``, ``cluster``, ``pointing``) fill those fields.
TGP2020's layout (``Sci/<cluster>/<offset>/…``, ``Cali/<U|B|V|BIAS|DARKS>/…``) is one of them.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

FOLDER_CONVENTIONS: dict[str, list[tuple[str, dict[str, str]]]] = {
    "tgp2020": [
        (r"(^|/)cali/bias(es)?/", {"kind": "bias"}),
        (r"(^|/)cali/darks?/", {"kind": "dark"}),
        (r"(^|/)cali/(?P<filter>[UBVRI])/", {"kind": "flat"}),
        (r"(^|/)sci/(?P<cluster>[^/]+)/(?P<pointing>[^/]+)/", {"kind": "science"}),
    ],
    "calib_science": [
        (r"(^|/)calib(ration)?s?/bias(es)?/", {"kind": "bias"}),
        (r"(^|/)calib(ration)?s?/darks?/", {"kind": "dark"}),
        (r"(^|/)calib(ration)?s?/flats?/(?P<filter>[UBVRI])/", {"kind": "flat"}),
        (r"(^|/)science/(?P<cluster>[^/]+)/(?P<filter>[UBVRI])/", {"kind": "science"}),
    ],
}


def classify_by_folder(relpath: str | PurePosixPath) -> dict[str, str]:
    """Return what the folder layout says of a file (possibly nothing).

    Parameters
    ----------
    relpath : str
        The file's path relative to the night's root directory, with '/' separators.

    Returns
    -------
    dict
        Any of ``kind``, ``filter``, ``cluster``, ``pointing`` and ``convention``.
    """
    text = str(PurePosixPath(relpath))
    for convention, rules in FOLDER_CONVENTIONS.items():
        for pattern, fixed in rules:
            m = re.search(pattern, text, flags=re.IGNORECASE)
            if m:
                found = {k: v for k, v in m.groupdict().items() if v}
                if "filter" in found:
                    found["filter"] = found["filter"].upper()
                return {**fixed, **found, "convention": convention}
    return {}
