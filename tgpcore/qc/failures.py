"""Whether a failure came from the environment (disk, network, database, permissions) or from
the data. A night that failed for the environment is worth another try; one whose data cannot
give a stage's product (no standards in a filter, no cluster in the cone) is not."""

from __future__ import annotations

import re

#: Exception names (the text before the first ':' of a recorded failure) of the environment.
ENVIRONMENT_ERRORS = frozenset({
    "DiskFullError", "OSError", "IOError", "PermissionError", "ConnectionError",
    "ConnectionRefusedError", "ConnectionResetError", "ConnectionAbortedError",
    "BrokenPipeError", "TimeoutError", "socket.timeout", "URLError", "HTTPError",
    "RemoteDisconnected", "ReadTimeout", "ConnectTimeout", "ReadError", "ConnectError",
    "HTTPStatusError", "OperationalError", "InterfaceError", "DatabaseUnavailable",
    "CatalogUnavailable", "ServiceUnavailable", "RetryError", "MemoryError",
    "TemporaryError", "Crashed", "KilledWorker", "CommClosedError"})
#: Phrases of environmental failures whatever exception carries them.
ENVIRONMENT_PHRASES = re.compile(
    r"no space left|not enough space|disk is full|disk full|permission denied|"
    r"connection (refused|reset|aborted)|timed? ?out|temporarily unavailable|"
    r"could not connect|server closed the connection|name or service not known|"
    r"network is unreachable|service unavailable|50[234] ", re.IGNORECASE)


def is_environmental(message: str | None) -> bool:
    """Whether a recorded failure (``"ExceptionName: text"``) is the environment's fault.

    Examples
    --------
    >>> is_environmental("DiskFullError: no space left writing /out/r1/stacks/a.fits")
    True
    >>> is_environmental("ValueError: 0 standard-star measurements in U")
    False
    """
    if not message:
        return False
    name = message.split(":", 1)[0].strip().rsplit(".", 1)[-1]
    return name in ENVIRONMENT_ERRORS or bool(ENVIRONMENT_PHRASES.search(message))


def night_outcome(status: str, failed: dict[str, str]) -> tuple[str, str | None]:
    """How a night's run ends for the nightly scheduler: ('done' | 'failed', why).

    A run that succeeded is done. A partial run is done (with its failures noted) unless a
    failure came from the environment, when it is failed and tried again. A failed run is
    failed.
    """
    why = "; ".join(f"{k}: {v}" for k, v in failed.items()) or None
    if status == "succeeded":
        return "done", None
    if status == "partial" and not any(is_environmental(v) for v in failed.values()):
        return "done", f"partial (the data's limits, not retried): {why}"
    return "failed", f"{status}: {why or 'no reason recorded'}"
