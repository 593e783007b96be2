"""The sample API: the version document at ``/`` and the v1 app under ``/v1``.

v1 is deliberately small and cheap (it is what the benchmark measures):

- ``GET /v1/ping``: ``{"ping": "pong", "pid": <worker pid>}``; the pid shows
  which worker process answered.
- ``POST /v1/echo``: the JSON request body, back; malformed JSON is a 400 fault.
- ``GET /v1/sleep?ms=N``: sleeps N ms cooperatively (``eventlet.sleep``), for
  load tests of concurrency; 0 <= N <= 60000.
"""

import json
import os

import eventlet
import routes
import webob
import webob.exc

from wsgisvc.sample import rpc_api
from wsgisvc.sample.faultwrap import fault_response

MAX_SLEEP_MS = 60000


class V1App:
    """Routes v1 paths to handlers; a path without the method is 405."""

    def __init__(self) -> None:
        self._mapper = routes.Mapper()
        self._mapper.connect("/ping", action="ping")
        self._mapper.connect("/echo", action="echo")
        self._mapper.connect("/sleep", action="sleep")
        self._handlers = {
            ("ping", "GET"): self.ping,
            ("ping", "HEAD"): self.ping,
            ("echo", "POST"): self.echo,
            ("sleep", "GET"): self.sleep,
        }
        rpc_api.add_routes(self._mapper, self._handlers)  # /services, /rpc/echo

    def __call__(self, environ, start_response):
        request = webob.Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: webob.Request) -> webob.Response:
        match = self._mapper.match(request.path_info or "/")
        if match is None:
            return fault_response(404, f"No such resource: {request.path_info}")
        action = match["action"]
        handler = self._handlers.get((action, request.method))
        if handler is None:
            allowed = ", ".join(m for a, m in self._handlers if a == action)
            return fault_response(
                405, f"{request.method} is not allowed here", [("Allow", allowed)]
            )
        return handler(request)

    def ping(self, request: webob.Request) -> webob.Response:
        return _json({"ping": "pong", "pid": os.getpid()})

    def echo(self, request: webob.Request) -> webob.Response:
        try:
            body = request.body  # reads through sizelimit's limiting reader
        except webob.exc.HTTPRequestEntityTooLarge:
            return fault_response(
                413, "The request body is larger than max_request_body_size."
            )
        try:
            document = json.loads(body)
        except ValueError as exc:
            return fault_response(400, f"Malformed JSON in request body: {exc}")
        return _json(document)

    def sleep(self, request: webob.Request) -> webob.Response:
        raw = request.GET.get("ms", "0")
        if not raw.isdigit() or int(raw) > MAX_SLEEP_MS:
            return fault_response(
                400, f"ms must be an integer from 0 to {MAX_SLEEP_MS}"
            )
        eventlet.sleep(int(raw) / 1000.0)
        return _json({"slept_ms": int(raw)})


def _json(document) -> webob.Response:
    return webob.Response(
        body=json.dumps(document).encode(),
        content_type="application/json",
        charset=None,
    )


def versions_app(environ, start_response):
    """The version document at ``/``; any other path under it is a 404 fault."""
    request = webob.Request(environ)
    if request.path_info not in ("", "/"):
        response = fault_response(404, f"No such resource: {request.path_info}")
    else:
        response = _json(
            {
                "versions": [
                    {
                        "id": "v1.0",
                        "status": "CURRENT",
                        "links": [{"rel": "self", "href": request.host_url + "/v1/"}],
                    }
                ]
            }
        )
    return response(environ, start_response)


def v1_factory(global_conf, **local_conf):
    """paste.app_factory for ``[app:v1app]``."""
    return V1App()


def versions_factory(global_conf, **local_conf):
    """paste.app_factory for ``[app:versionsapp]``."""
    return versions_app
