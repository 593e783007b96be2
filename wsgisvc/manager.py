"""Manager: the object a Service runs, and the RPC endpoint it serves.

Its public methods are callable over RPC; the lifecycle hooks below are
listed in ``rpc_hidden`` so a caller cannot, say, ``init_host`` a running
worker. Periodic tasks are its ``@periodic_task`` methods.
"""

from __future__ import annotations

import logging
from typing import Any

import oslo_messaging as messaging
from oslo_config import cfg

from wsgisvc import config, opts
from wsgisvc.periodic_task import PeriodicTasks

LOG = logging.getLogger(__name__)


class Manager(PeriodicTasks):
    """Base class of the managers a ``Service`` runs.

    Subclasses set ``target`` (the RPC API version they implement) and
    override the hooks they need; ``Service.start()`` calls them in the order
    ``init_host``, ``pre_start_hook``, (RPC server starts), ``post_start_hook``.
    """

    target = messaging.Target(version="1.0")

    rpc_hidden = frozenset(
        {
            "init_host",
            "cleanup_host",
            "pre_start_hook",
            "post_start_hook",
            "reset",
            "periodic_tasks",
            "run_periodic_tasks",
            "periodic_task_names",
        }
    )

    def __init__(
        self,
        host: str,
        service_name: str | None = None,
        cluster: str | None = None,
        *,
        conf: cfg.ConfigOpts | None = None,
    ):
        # The binary's CONF unless the caller hands one over (tests do).
        conf = conf if conf is not None else config.CONF
        opts.register(conf, opts.service_opts)
        super().__init__(conf, default_spacing=conf.periodic_interval)
        self.conf = conf
        self.host = host
        self.service_name = service_name
        self.cluster = cluster

    def periodic_tasks(self, context: Any, raise_on_error: bool = False) -> float:
        """Run due periodic tasks; return seconds until the next is due."""
        return self.run_periodic_tasks(context, raise_on_error=raise_on_error)

    def init_host(self) -> None:
        """Prepare the host before the service takes RPC calls."""

    def pre_start_hook(self) -> None:
        """Last step before the RPC server starts consuming."""

    def post_start_hook(self) -> None:
        """First step after the RPC server consumes: calls may arrive now."""

    def cleanup_host(self) -> None:
        """Release what init_host took; called when the service stops."""

    def reset(self) -> None:
        """SIGHUP: drop caches, re-read what the options changed."""


__all__ = ["Manager"]
