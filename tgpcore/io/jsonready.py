"""Plain JSON data from results that hold NumPy values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def json_ready(obj: Any) -> Any:
    """``obj`` with NumPy arrays and scalars as Python lists and numbers, tuples as lists, keys
    as strings and non-finite floats as ``None`` (JSON has no NaN); anything else as it is.

    (The run database's JSON columns use :func:`tgpcore.rundb.coltypes.to_jsonable`, which
    also turns what JSON cannot hold into strings.)
    """
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
