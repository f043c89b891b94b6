"""Start real services (Prefect server and worker, Dask scheduler and workers) for tests.

Every service binds 127.0.0.1 on a free port, runs in its own process group, logs to a file,
and is stopped (SIGTERM to its group, then SIGKILL) when its context ends, also on failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any Prefect/tgp settings of the shell, plus
    ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "TGP_", "DASK_"))}
    env.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "TGP_OFFLINE": "1",
                "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


class Service:
    """A subprocess in its own process group, with its output in ``log``."""

    def __init__(self, name: str, cmd: list[str], env: Mapping[str, str], log: Path,
                 cwd: Path = ROOT) -> None:
        self.name, self.cmd, self.log = name, cmd, log
        self._fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=dict(env), cwd=cwd, stdout=self._fh,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc.poll() is None

    def tail(self, n: int = 4000) -> str:
        """The end of the log."""
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def wait_for(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until true; fail with the log if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before "
                                   f"{what}:\n{self.tail()}")
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.5)
        raise TimeoutError(f"{self.name}: no {what} after {timeout:.0f} s:\n{self.tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the process group, SIGKILL it if it lingers; return the exit code."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # children that outlived the leader (same group) go too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._fh.close()
        return self.proc.returncode


@contextlib.contextmanager
def service(name: str, cmd: list[str], env: Mapping[str, str], log: Path,
            cwd: Path = ROOT) -> Iterator[Service]:
    """Run a :class:`Service` for the duration of the context."""
    svc = Service(name, cmd, env, log, cwd)
    try:
        yield svc
    finally:
        svc.stop()


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0
