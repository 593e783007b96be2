"""The sample worker: what ``wsgisvc-worker`` runs out of the box.

Small on purpose; each method exists to show (and let tests prove) one
property of the RPC service: ``echo`` a round trip and which worker
answered, ``sleep`` a call still running when a signal arrives, ``ping``
a fanout cast reaching every worker, ``count_runs`` a periodic task.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import oslo_messaging as messaging

from wsgisvc import backend, manager
from wsgisvc.periodic_task import periodic_task

LOG = logging.getLogger(__name__)


class WorkerManager(manager.Manager):
    target = messaging.Target(version="1.0")

    def __init__(self, host: str, *args: Any, **kwargs: Any):
        super().__init__(host, *args, **kwargs)
        self.periodic_runs = 0
        self.pings: list[str] = []

    def _whoami(self) -> dict[str, Any]:
        return {"host": self.host, "pid": os.getpid()}

    def echo(self, ctxt: dict, payload: Any) -> dict[str, Any]:
        """Return ``payload`` and who answered."""
        return {"payload": payload, **self._whoami()}

    def sleep(self, ctxt: dict, ms: int) -> dict[str, Any]:
        """Hold the call for ``ms`` milliseconds (greenly on eventlet), then answer."""
        LOG.info(
            "Worker %s on %s sleeping %d ms for a call", os.getpid(), self.host, ms
        )
        backend.sleep(ms / 1000.0)
        return {"slept_ms": ms, **self._whoami()}

    def ping(self, ctxt: dict, token: str) -> None:
        """A cast target: remember and log ``token``."""
        self.pings.append(token)
        LOG.info("Worker %s on %s received ping %s", os.getpid(), self.host, token)

    def stats(self, ctxt: dict) -> dict[str, Any]:
        return {
            "periodic_runs": self.periodic_runs,
            "pings": self.pings,
            **self._whoami(),
        }

    @periodic_task
    def count_runs(self, context: Any) -> None:
        self.periodic_runs += 1
        LOG.debug("Periodic task count_runs ran %d times", self.periodic_runs)
