"""Two fits of one cluster side by side: do they agree?

The night's own Johnson photometry and Gaia's photometry of the same members are independent
measurements fitted with the same isochrones. :func:`compare_fits` gives, per parameter, the
difference, the combined error (the two total errors in quadrature) and their ratio; a ratio
above :data:`ALARM_THRESHOLD` raises the parameter's alarm.

The combined error treats the two fits' errors as independent. Their statistical and
zero-point errors are; their systematic terms from the isochrones themselves (the same models,
the same extinction law, the same member list) are partly shared, which makes the combined
error an overestimate and the test conservative: an alarm is a real disagreement.
"""

from __future__ import annotations

import math
from typing import Any

#: |difference| / combined error above which a parameter is flagged.
ALARM_THRESHOLD = 2.0
#: Parameters compared.
COMPARED: tuple[str, ...] = ("log_age", "dm", "ebv", "mh")


def _value_and_error(fit: Any, name: str) -> tuple[float, float, bool]:
    """(p50, total 1-sigma, fixed) from a FitResult or a fit.json dict."""
    if hasattr(fit, "parameters"):
        p = fit.parameters[name]
        return float(p.p50), float(p.total), bool(p.fixed)
    p = fit[name]
    err = p.get("err_total")
    if err is None:  # an older fit.json: the posterior's half-width only
        err = 0.5 * (p["p84"] - p["p16"])
    return float(p["p50"]), float(err), bool(p.get("fixed", False))


def compare_fits(a: Any, b: Any, labels: tuple[str, str] = ("a", "b"),
                 threshold: float = ALARM_THRESHOLD) -> dict[str, Any]:
    """Per-parameter consistency of two fits of the same cluster.

    Parameters
    ----------
    a, b : FitResult or dict
        The fits (``FitResult`` objects, or the ``fit.json`` content / ``FitResult.to_dict()``).
    labels : (str, str)
        Names of the two fits in the text (e.g. ``("Johnson UBV", "Gaia")``).
    threshold : float
        |difference| / combined error above which the parameter's alarm is raised.

    Returns
    -------
    dict
        ``parameters``: per parameter ``a``, ``b`` (values), ``err_a``, ``err_b`` (total
        errors), ``difference`` (b - a), ``combined_error``, ``ratio`` (|difference| /
        combined error; None when both are fixed) and ``alarm``; ``alarm`` (any parameter),
        ``threshold``, ``labels``, ``method`` and ``summary`` (one line per parameter).
    """
    out: dict[str, Any] = {"labels": list(labels), "threshold": threshold,
                           "method": "difference over the total errors in quadrature "
                                     "(independent fits assumed: conservative where the "
                                     "models' systematics are shared)",
                           "parameters": {}}
    lines = []
    any_alarm = False
    for k in COMPARED:
        va, ea, fa = _value_and_error(a, k)
        vb, eb, fb = _value_and_error(b, k)
        diff = vb - va
        comb = math.hypot(ea, eb)
        if fa and fb:
            ratio, alarm = None, False
        elif comb > 0:
            ratio = abs(diff) / comb
            alarm = ratio > threshold
        else:
            ratio, alarm = math.inf, diff != 0
        any_alarm |= alarm
        out["parameters"][k] = {"a": va, "b": vb, "err_a": ea, "err_b": eb,
                                "difference": diff, "combined_error": comb,
                                "ratio": ratio, "alarm": alarm}
        lines.append(f"{k}: {labels[0]} {va:.3f} ± {ea:.3f}, {labels[1]} {vb:.3f} ± {eb:.3f}; "
                     f"difference {diff:+.3f} = "
                     + ("(both fixed)" if ratio is None else f"{ratio:.1f} sigma")
                     + (" ALARM" if alarm else ""))
    out["alarm"] = any_alarm
    out["summary"] = lines
    return out
