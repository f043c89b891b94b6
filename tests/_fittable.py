"""A text table of isochrone fits against the simulator's truth, for the fitting tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def truth_table(rows: Sequence[dict], params: Sequence[str], head: str,
                interval: tuple[str, str], cell: Callable[[dict, float], str],
                lead: Callable[[dict], str], tail: Callable[[dict], str]) -> str:
    """``head``, then a line per fit: ``lead(r)``, a cell per parameter, ``tail(r)``.

    A row ``r`` holds ``r[k]`` (the fit of parameter ``k``) and ``r["truth"][k]``;
    ``cell(p, t)`` writes a fit ``p`` against the truth ``t``, then ``*`` marks the cells whose
    interval (the keys ``interval`` of ``p``: low, high) misses the truth.
    """
    lo, hi = interval
    lines = [head]
    for r in rows:
        cells = []
        for k in params:
            p, t = r[k], r["truth"][k]
            hit = "" if p[lo] <= t <= p[hi] else "*"
            cells.append(f"{cell(p, t)}{hit:1}")
        lines.append(lead(r) + " ".join(cells) + tail(r))
    return "\n".join(lines)
