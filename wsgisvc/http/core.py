"""The WSGI adapter: a request the protocol framed, through the application.

A runtime (``wsgisvc.http.green``, ``wsgisvc.http.threaded``; the contract is
``wsgisvc.http.scheduling``) moves a connection's bytes into its
:class:`~wsgisvc.http.protocol.Protocol` until a request is ready, then gives
it a request slot and calls :meth:`Connection.serve`: the environ, the
application, the response, the access line and the metrics, and the drain of
a body the application left unread. The adapter reaches the socket through
the runtime's :class:`~wsgisvc.http.scheduling.Transport` (``recv`` and
``send``) and makes no HTTP decision of its own.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING
from urllib.parse import unquote

from wsgisvc import metrics
from wsgisvc.http import accesslog
from wsgisvc.http.body import Input
from wsgisvc.http.limits import LINGER_SECONDS, RECV_SIZE, Limits
from wsgisvc.http.protocol import After, Protocol, Refusal, Request, Shared
from wsgisvc.http.response import Response

if TYPE_CHECKING:
    from wsgisvc.http.scheduling import Transport

LOG = logging.getLogger(__name__)

# Header names as environ keys, computed once per name.
_ENVIRON_KEYS: dict[bytes, str | None] = {
    b"content-type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
}


def _environ_key(name: bytes) -> str | None:
    """``HTTP_X_Y`` for ``X-Y``; None for a name holding ``_``: it would share
    ``X-Y``'s key, and a proxy that sets only ``X-Y`` would be bypassed."""
    try:
        return _ENVIRON_KEYS[name]
    except KeyError:
        pass
    lower = name.lower()
    if lower in _ENVIRON_KEYS:
        key = _ENVIRON_KEYS[lower]
    elif b"_" in name:
        key = None
    else:
        key = "HTTP_" + lower.decode("ascii").upper().replace("-", "_")
    if len(_ENVIRON_KEYS) < 1024:
        _ENVIRON_KEYS[name] = key
    return key


class Core:
    """What every connection of one server shares: the app, limits, options."""

    def __init__(
        self,
        app,
        server,
        limits: Limits,
        *,
        log_format: str,
        debug: bool,
        url_scheme: str,
        multithread: bool,
        heartbeat=None,
        slow_requests=None,
    ) -> None:
        """``heartbeat``: None, or what the runtime's loop stamps each turn
        (``beat()``, at least every ``interval`` s; ``release()`` when it ends:
        ``wsgisvc.watchdog.Beat``). ``slow_requests``: None, or what each
        request is given to while it is served (``begin``, ``end``:
        ``wsgisvc.watchdog.SlowRequests``)."""
        self.app = app
        self.server = server
        self.shared = Shared(limits)
        self.debug = debug
        self.access_log = accesslog.AccessLog(
            log_format, accesslog.WRITER if multithread else None
        )
        self.heartbeat = heartbeat
        self.slow_requests = slow_requests
        self.environ = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url_scheme,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "SCRIPT_NAME": "",
            "wsgisvc.server": server,
            "wsgisvc.debug": debug,
        }
        if url_scheme == "https":
            self.environ["HTTPS"] = "on"

    @property
    def limits(self) -> Limits:
        return self.shared.limits

    def stop(self, grace: float) -> None:
        """The server stops (``Shared.stop``): responses say ``Connection:
        close``; kept-alive connections wait ``grace`` for their next request."""
        self.shared.stop(grace)

    def request_done(
        self,
        conn: Connection,
        method: str,
        line: str,
        status: str,
        length: int,
        started: float,
        context=None,
    ) -> None:
        """The one place a request ends, answered or cut: its method, status
        line, body bytes sent, start (monotonic) and the oslo.context context
        the application made for it: the access line and the request metrics."""
        self.access_log.write(
            conn.client_ip,
            line,
            status,
            length,
            started,
            conn.protocol.request_id,
            context,
        )
        metrics.http_request_done(self.server.name, method, status, started)


class Connection:
    """One client connection as the adapter sees it: its protocol, its
    transport, and the environ its requests start from."""

    def __init__(
        self, core: Core, transport: Transport, address, sockname, now: float
    ) -> None:
        """``address``: the peer's (a tuple, or a unix socket's name);
        ``sockname``: the listening end's; ``now``: when it was accepted."""
        self.core = core
        self.transport = transport
        self.protocol = Protocol(core.shared, now)
        if isinstance(address, tuple):
            self.client_ip, port = address[0], str(address[1])
        else:  # a unix socket
            self.client_ip, port = "", ""
        environ = dict(core.environ)
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = self.client_ip, port
        if isinstance(sockname, tuple):
            environ["SERVER_NAME"], environ["SERVER_PORT"] = (
                sockname[0],
                str(sockname[1]),
            )
        else:
            environ["SERVER_NAME"], environ["SERVER_PORT"] = "localhost", ""
        self._environ = environ

    def serve(self) -> After:
        """Serve the oldest request (or refuse it), with a slot; KEEP, CLOSE
        or LINGER: what the runtime does next."""
        protocol = self.protocol
        event = protocol.next_event()
        if isinstance(event, Refusal):
            return self._refuse(event)
        core = self.core
        message = event.message
        started = protocol.started
        environ = self._environ_for(event)
        response = Response(protocol, self.transport, environ, core.debug)
        context_before = accesslog.current_context()
        slow = core.slow_requests
        in_flight = (
            None if slow is None else slow.begin(message.method, event.target, started)
        )
        try:
            response.run(core.app)
        except OSError as exc:  # the client went away while we answered
            LOG.debug("connection from %s ended: %s", self.client_ip, exc)
        finally:
            if in_flight is not None:
                slow.end(in_flight)
        core.request_done(
            self,
            message.method,
            event.line,
            protocol.status,
            protocol.sent,
            started,
            accesslog.context_made_since(context_before),
        )
        return self._after(response.broken)

    def _after(self, broken: bool) -> After:
        """What the protocol says once the response went out; the rest of an
        unread body is read and dropped here, with the slot."""
        protocol = self.protocol
        after = protocol.response_ended(time.monotonic(), broken)
        while after is After.DRAIN:
            try:
                data = self.transport.recv(
                    RECV_SIZE, max(0.0, protocol.deadline - time.monotonic())
                )
            except OSError:
                data = b""
            now = time.monotonic()
            if data:
                protocol.receive(data, now)
                after = protocol.response_ended(now)
            else:  # closed, failed or timed out: nothing more to keep
                after = protocol.response_ended(now, broken=True)
        protocol.request_id = ""  # a refusal next on this connection has none
        return after

    def _environ_for(self, request: Request) -> dict:
        environ = self._environ.copy()
        message = request.message
        for name, value in message.headers:
            key = _environ_key(name)
            if key is None:
                continue
            text = value.strip(b" \t").decode("latin-1")
            if key in environ and key.startswith("HTTP_"):
                environ[key] += "," + text
            else:
                environ[key] = text
        if request.authority is not None:
            environ["HTTP_HOST"] = request.authority  # RFC 9112 3.2.2
        path = request.path
        environ["REQUEST_METHOD"] = message.method
        environ["SERVER_PROTOCOL"] = "HTTP/" + message.version
        environ["RAW_PATH_INFO"] = path
        environ["PATH_INFO"] = unquote(path, "latin-1") if "%" in path else path
        if request.query:  # absent when empty, as eventlet.wsgi did (apps rely on it)
            environ["QUERY_STRING"] = request.query
        environ["wsgi.input"] = Input(self.protocol, self.transport)
        return environ

    def _refuse(self, refusal: Refusal) -> After:
        """Answer a refusal and end: after a framing error nothing is trusted.

        The refusal is a request like any other in the access log and the
        metrics, and its access line is its one INFO line (the reason, which
        the client is sent, is at DEBUG); the linger that follows holds no
        slot.
        """
        error, message, protocol = refusal.error, refusal.message, self.protocol
        LOG.debug(
            "rejected request from %s with %s: %s",
            self.client_ip,
            error.status,
            error.reason,
        )
        try:
            self.transport.send(
                protocol.refusal(error),
                protocol.shared.limits.socket_timeout or LINGER_SECONDS,
            )
        except OSError:
            pass
        now = time.monotonic()
        started = message.ready_at if message is not None else now
        method = message.method if message is not None else "-"
        self.core.request_done(self, method, refusal.line, error.status, 0, started)
        return protocol.refused(now)
