"""A running run's heartbeat: a daemon thread that records, every half minute, that the run's
process is alive, and stops when the run is no longer running (or the process dies)."""

from __future__ import annotations

import logging
import threading

from tgpcore.rundb.runs import HEARTBEAT_INTERVAL_S

log = logging.getLogger(__name__)


class Heartbeat:
    """Beat for ``run_id`` in ``db`` (a :class:`~tgpcore.rundb.repository.RunDB`) until
    :meth:`stop`, or until the run is recorded as finished.

    A beat that cannot be written (the database briefly unreachable) is logged and retried at
    the next beat; it never stops the run.
    """

    def __init__(self, db, run_id: str, interval_s: float = HEARTBEAT_INTERVAL_S) -> None:
        self.db, self.run_id, self.interval_s = db, run_id, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"tgp-heartbeat-{run_id[:8]}",
                                        daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if not self.db.beat(self.run_id):
                    return                   # finished (or closed by someone else)
            except Exception as exc:  # noqa: BLE001 - a missed beat never stops the run
                log.warning("heartbeat of run %s not recorded: %s", self.run_id, exc)
