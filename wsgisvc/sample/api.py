"""The sample API: the version document at ``/`` and the v1 app under ``/v1``.

v1 is deliberately small and cheap (it is what the benchmark measures):

- ``GET /v1/ping``: ``{"ping": "pong", "pid": <worker pid>}``; the pid shows
  which worker process answered.
- ``POST /v1/echo``: the JSON request body, back; malformed JSON is a 400 fault.
- ``GET /v1/sleep?ms=N``: sleeps N ms (``backend.sleep``: greenly on eventlet), for
  load tests of concurrency; 0 <= N <= 60000.
"""

import json
import os

import routes
import webob
import webob.exc

from wsgisvc import backend
from wsgisvc.sample import rpc_api
from wsgisvc.sample.faultwrap import default_message, fault_response

MAX_SLEEP_MS = 60000


class V1App:
    """Routes v1 paths to handlers; a path without the method is 405.

    Handlers take a webob Request and return a webob Response or, on the fast
    path, a document to send as a 200 JSON body (a webob Response costs more
    than the whole ping handler). Route matches are
    cached per path (a match depends on nothing else), so the hot path is a
    dict lookup, not a walk over the route regexes.
    """

    match_cache_size = 1024

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
        self._matches: dict[str, str | None] = {}

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        action = self._action(path)
        if action is None:
            fault = fault_response(404, f"No such resource: {path}")
            return fault(environ, start_response)
        method = environ["REQUEST_METHOD"]
        handler = self._handlers.get((action, method))
        if handler is None:
            allowed = ", ".join(m for a, m in self._handlers if a == action)
            fault = fault_response(
                405, f"{method} is not allowed here", [("Allow", allowed)]
            )
            return fault(environ, start_response)
        result = handler(webob.Request(environ))
        if isinstance(result, webob.Response):
            return result(environ, start_response)
        return _json(start_response, result)

    def _action(self, path: str) -> str | None:
        try:
            return self._matches[path]
        except KeyError:
            match = self._mapper.match(path)
            action = match["action"] if match else None
            if len(self._matches) < self.match_cache_size:
                self._matches[path] = action
            return action

    def ping(self, request: webob.Request) -> dict:
        return {"ping": "pong", "pid": os.getpid()}

    def echo(self, request: webob.Request) -> dict | webob.Response:
        try:
            # One read through sizelimit's limiting reader; request.body would
            # first copy a body over 10 KiB into a temporary file on disk.
            body = request.body_file.read()
        except webob.exc.HTTPRequestEntityTooLarge:
            return fault_response(413, default_message(413))
        try:
            return json.loads(body)
        except ValueError as exc:
            return fault_response(400, f"Malformed JSON in request body: {exc}")

    def sleep(self, request: webob.Request) -> dict | webob.Response:
        raw = request.GET.get("ms", "0")
        if not raw.isdigit() or int(raw) > MAX_SLEEP_MS:
            return fault_response(
                400, f"ms must be an integer from 0 to {MAX_SLEEP_MS}"
            )
        backend.sleep(int(raw) / 1000.0)
        return {"slept_ms": int(raw)}


def _json(start_response, document) -> list[bytes]:
    body = json.dumps(document).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def versions_app(environ, start_response):
    """The version document at ``/``; any other path under it is a 404 fault."""
    request = webob.Request(environ)
    if request.path_info not in ("", "/"):
        fault = fault_response(404, f"No such resource: {request.path_info}")
        return fault(environ, start_response)
    link = {"rel": "self", "href": request.host_url + "/v1/"}
    version = {"id": "v1.0", "status": "CURRENT", "links": [link]}
    return _json(start_response, {"versions": [version]})


def v1_factory(global_conf, **local_conf):
    """paste.app_factory for ``[app:v1app]``."""
    return V1App()


def versions_factory(global_conf, **local_conf):
    """paste.app_factory for ``[app:versionsapp]``."""
    return versions_app
