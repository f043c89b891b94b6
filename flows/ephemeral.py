"""Prefect's temporary API server goes down with the process that started it.

A command-line run without ``PREFECT_API_URL`` gets a temporary Prefect server: a ``uvicorn``
child process. Prefect stops it when the run ends, but a parent killed with ``kill -9`` left it
running for good (an orphan per killed run). :func:`bind_temporary_server` asks the kernel to
send the child SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import types

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:                     # runs in the child, before exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:  # noqa: BLE001 - no prctl (not Linux): the child outlives a killed parent
        pass


def _popen(*args, **kwargs):
    kwargs.setdefault("preexec_fn", _die_with_parent)
    return subprocess.Popen(*args, **kwargs)


def allow_slow_start() -> None:
    """Give Prefect's temporary server 180 s to start: its first start on a busy machine
    migrates a new SQLite database, and Prefect's 20 s default then fails the run ("Timed out
    while attempting to connect to ephemeral Prefect API server")."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def bind_temporary_server() -> bool:
    """Make Prefect's temporary server (started later by this process) die with it.

    Returns whether it could be done (Linux, and Prefect's server module as expected).
    """
    allow_slow_start()
    if os.environ.get("PREFECT_API_URL"):
        return False                         # a configured server is not ours to bind
    if not sys.platform.startswith("linux"):
        return False
    try:
        from prefect.server.api import server as server_module
    except Exception:  # noqa: BLE001 - Prefect without its server: nothing to bind
        return False
    if not hasattr(server_module, "subprocess"):
        return False
    shim = types.SimpleNamespace(**{k: getattr(subprocess, k) for k in dir(subprocess)
                                    if not k.startswith("__")})
    shim.Popen = _popen
    server_module.subprocess = shim
    return True
