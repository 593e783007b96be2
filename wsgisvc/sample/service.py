"""A trivial service to try the launchers with: it ticks, and logs each tick."""

import os

from oslo_log import log as logging

from wsgisvc import backend
from wsgisvc.launcher import ServiceBase

LOG = logging.getLogger(__name__)


class TickService(ServiceBase):
    """Logs a tick every ``interval`` seconds; stop() ends the loop."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self._ticker = None
        self._stopped = backend.Event()

    def start(self) -> None:
        LOG.info("tick service starting in pid %d", os.getpid())
        self._stopped.clear()
        self._ticker = backend.spawn(self._tick)

    def _tick(self) -> None:
        count = 0
        while not self._stopped.wait(self.interval):
            count += 1
            LOG.info("pid %d tick %d", os.getpid(), count)

    def stop(self) -> None:
        self._stopped.set()

    def wait(self) -> None:
        if self._ticker is not None:
            self._ticker.wait()

    def reset(self) -> None:
        LOG.info("tick service in pid %d reset", os.getpid())

    def __repr__(self) -> str:
        return f"TickService(interval={self.interval})"
