"""Call a flaky network function with retries, exponential backoff, jitter and a timeout.

The library retries on its own, so a script that uses :mod:`tgpcore.catalogs` directly is as
robust as the pipeline; the Prefect tasks only add names and logging around it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class RetriesExhaustedError(RuntimeError):
    """Every attempt failed; ``last_error`` holds the last exception, ``attempts`` the count."""

    def __init__(self, what: str, attempts: int, last_error: BaseException) -> None:
        self.what, self.attempts, self.last_error = what, attempts, last_error
        super().__init__(f"{what} failed after {attempts} attempt(s); last error: "
                         f"{type(last_error).__name__}: {last_error}")


class PermanentError(RuntimeError):
    """Raised (or wrapped) by a called function for a failure that retrying cannot fix."""


@dataclass(frozen=True)
class RetryPolicy:
    """How to retry: ``attempts`` in all, delays ``base * 2**k`` capped at ``max_delay`` (s),
    each shortened by a random fraction up to ``jitter`` (0-1), and ``timeout`` (s) per attempt
    (``None``: no limit)."""

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    jitter: float = 0.5
    timeout: float | None = 120.0

    def delay(self, k: int, rng: random.Random | None = None) -> float:
        """The pause after failed attempt ``k`` (0-based)."""
        d = min(self.max_delay, self.base_delay * 2.0**k)
        return d * (1.0 - self.jitter * (rng or random).random())


def _with_timeout(fn: Callable[[], T], timeout: float | None) -> T:
    if timeout is None:
        return fn()
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    # A daemon thread: an attempt that hangs past the timeout is abandoned, not killed
    # (the HTTP clients used here also carry a socket timeout, so it ends on its own).
    th = threading.Thread(target=run, daemon=True, name="tgp-call-with-timeout")
    th.start()
    th.join(timeout)
    if th.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def is_transient(exc: BaseException) -> bool:
    """Whether retrying ``exc`` can help: network, timeout and server-side errors, not bugs
    or :class:`PermanentError`."""
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, TimeoutError | ConnectionError | OSError):
        text = str(exc)
        # HTTP 4xx other than 408 (timeout) and 429 (too many requests) will not get better
        for code in ("400", "401", "403", "404", "405", "410", "413", "414"):
            if f"Error {code}" in text or f"{code} Client Error" in text:
                return False
        return True
    return False


def call_with_retries(fn: Callable[[], T], *, attempts: int = 4, base_delay: float = 1.0,
                      max_delay: float = 30.0, jitter: float = 0.5,
                      timeout: float | None = 120.0, what: str = "call",
                      retry_if: Callable[[BaseException], bool] = is_transient,
                      sleep: Callable[[float], None] = time.sleep,
                      rng: random.Random | None = None) -> T:
    """Call ``fn()`` until it succeeds, at most ``attempts`` times.

    Parameters
    ----------
    fn : callable
        No-argument function.
    attempts : int
        Attempts in all (>= 1).
    base_delay, max_delay : float
        Backoff: the pause after failure k (0-based) is ``min(max_delay, base_delay * 2**k)``…
    jitter : float
        …shortened by a uniform random fraction in [0, jitter).
    timeout : float or None
        Seconds allowed per attempt; a slower attempt counts as a ``TimeoutError``.
    what : str
        Name of the call for messages and logs (never put secrets in it).
    retry_if : callable
        Which exceptions are worth retrying (default :func:`is_transient`); others propagate
        at once.
    sleep, rng
        Injected for tests.

    Returns
    -------
    The value of ``fn()``.

    Raises
    ------
    RetriesExhaustedError
        If every attempt failed with a retryable error.
    """
    policy = RetryPolicy(attempts, base_delay, max_delay, jitter, timeout)
    last: BaseException | None = None
    for k in range(max(1, attempts)):
        try:
            return _with_timeout(fn, timeout)
        except BaseException as exc:
            if not retry_if(exc):
                raise
            last = exc
            if k + 1 < attempts:
                pause = policy.delay(k, rng)
                log.warning("%s: attempt %d/%d failed (%s: %s); retrying in %.1f s", what,
                            k + 1, attempts, type(exc).__name__, exc, pause)
                sleep(pause)
    assert last is not None
    raise RetriesExhaustedError(what, max(1, attempts), last)


def retry(fn: Callable[[], T], policy: RetryPolicy, what: str = "call", **kw) -> T:
    """:func:`call_with_retries` with the settings of a :class:`RetryPolicy`."""
    return call_with_retries(fn, attempts=policy.attempts, base_delay=policy.base_delay,
                             max_delay=policy.max_delay, jitter=policy.jitter,
                             timeout=policy.timeout, what=what, **kw)
