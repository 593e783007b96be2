"""The sample API's window on the worker side: the services table and an RPC
call to the sample worker.

- ``GET /v1/services``: every service row, with ``state`` up or down.
- ``POST /v1/rpc/echo`` with ``{"payload": ..., "host": optional, "timeout":
  optional seconds}``: an RPC ``echo`` call to the ``worker`` topic. No reply
  in time is a 504 fault, an unreachable broker a 503 fault; either way the
  API goes on serving everything else.

The broker and the database are reached lazily, on the first request, in
the worker process that serves it: an API that nobody asks about RPC never
needs a broker. Their libraries (oslo.messaging, SQLAlchemy) are imported
then too, so a worker nobody asks carries none of them.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import webob
from oslo_config import cfg

from wsgisvc import config, errors, registry
from wsgisvc.sample.faultwrap import fault_response

if TYPE_CHECKING:
    from wsgisvc import rpc

LOG = logging.getLogger(__name__)

WORKER_TOPIC = "worker"
DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 60.0


class RPCController:
    def __init__(self, conf: cfg.ConfigOpts | None = None):
        # Paste factories get no ConfigOpts: the sample uses the binary's CONF.
        self.conf = conf if conf is not None else config.CONF
        registry.register_opts(self.conf)
        self._client: rpc.RPCClient | None = None
        self._engine = None

    def services(self, request: webob.Request) -> webob.Response:
        # SQLAlchemy: on the first request for the services table
        from wsgisvc.registry import api as registry_api
        from wsgisvc.registry.heartbeat import DB_ERRORS

        try:
            if self._engine is None:
                self._engine = registry.create_engine(self.conf)
            rows = registry_api.get_all(self._engine)
        except errors.DatabaseDriverMissing as error:
            LOG.warning("GET /v1/services: %s", error)
            return fault_response(503, str(error))
        except DB_ERRORS as error:
            LOG.warning("GET /v1/services: database unreachable: %s", error)
            return fault_response(503, "The services database cannot be reached.")
        down_time = self.conf.service_down_time
        return _json({"services": [_service_view(row, down_time) for row in rows]})

    def echo(self, request: webob.Request) -> webob.Response:
        # oslo.messaging: on the first RPC request
        import oslo_messaging as messaging

        from wsgisvc import rpc

        try:
            document = json.loads(request.body or b"{}")
            timeout = float(document.get("timeout", DEFAULT_TIMEOUT))
            host = document.get("host")
        except (ValueError, AttributeError, TypeError) as error:
            return fault_response(400, f"Malformed request body: {error}")
        if not 0 < timeout <= MAX_TIMEOUT:
            return fault_response(400, f"timeout must be in (0, {MAX_TIMEOUT}]")
        if self._client is None:
            self._client = rpc.RPCClient(self.conf, WORKER_TOPIC, retry=0)
        try:
            reply = self._client.call(
                {},
                "echo",
                server=host,
                timeout=timeout,
                payload=document.get("payload"),
            )
        except messaging.MessagingTimeout:
            return fault_response(
                504, f"No reply from the {WORKER_TOPIC} service within {timeout} s."
            )
        except rpc.BrokerUnreachable:
            return fault_response(503, "The message broker cannot be reached.")
        return _json({"echo": reply})


def _service_view(row, down_time: float) -> dict:
    def stamp(value):
        return value.isoformat() if value else None

    return {
        "id": row.id,
        "uuid": row.uuid,
        "binary": row.binary,
        "host": row.host,
        "topic": row.topic,
        "status": "disabled" if row.disabled else "enabled",
        "state": "up" if registry.is_up(row, down_time) else "down",
        "forced_down": row.forced_down,
        "disabled_reason": row.disabled_reason,
        "report_count": row.report_count,
        "last_seen_up": stamp(row.last_seen_up),
        "created_at": stamp(row.created_at),
    }


def _json(document) -> webob.Response:
    return webob.Response(
        body=json.dumps(document).encode(),
        content_type="application/json",
        charset=None,
    )


def add_routes(mapper, handlers: dict) -> None:
    """Add the routes above to the v1 app's mapper and handler table."""
    controller = RPCController()
    mapper.connect("/services", action="services")
    mapper.connect("/rpc/echo", action="rpc_echo")
    handlers[("services", "GET")] = controller.services
    handlers[("rpc_echo", "POST")] = controller.echo
