"""The HTTP/1.1 core: one request, head to last byte, on sockets that block.

A :class:`Connection` is driven by a scheduler (``wsgisvc.http.green`` or
``wsgisvc.http.threaded``) in two phases, so that a connection holds a pool
slot only while its request is served:

1. :meth:`Connection.read_head` (or :meth:`Connection.receive` from a
   selector) until the next request's head is whole: no slot is held; the head
   must arrive within ``header_timeout`` seconds of its first byte (the first
   request: of the accept), whole, not per read;
2. :meth:`Connection.serve` with a slot: environ, the application, the
   response, the access log (or the refusal of a malformed head). It returns
   an :class:`After`: keep the connection, forget it (closed), or let it
   linger without the slot.

Only ``recv``, ``sendall``, ``settimeout``, ``shutdown``, ``getsockname`` and
``close`` are called on the socket, so a green socket (eventlet) and the
threads scheduler's (a non-blocking socket that waits in ``poll`` when a call
would block) both work.
"""

from __future__ import annotations

import enum
import logging
import socket
import sys
import time
from urllib.parse import unquote

from wsgisvc import metrics
from wsgisvc.http import accesslog, guard
from wsgisvc.http.body import (
    DRAIN_LIMIT,
    LINGER_SECONDS,
    RECV_SIZE,
    ClientGone,
    Input,
)
from wsgisvc.http.guard import BadRequest
from wsgisvc.http.parser import Message, RequestParser
from wsgisvc.http.response import Response

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


class After(enum.Enum):
    """What a scheduler does with a connection after :meth:`Connection.serve`."""

    KEEP = "keep"  # read the next request's head (no slot held meanwhile)
    CLOSE = "close"  # the socket is closed: forget the connection
    # Shut for writing: drop what the client still sends (``Connection.linger``,
    # or a selector doing the same without blocking) until ``linger_until``,
    # then close. No slot is held: refusals cannot starve the pool.
    LINGER = "linger"


class Core:
    """What every connection of one server shares: the app, limits, options."""

    def __init__(
        self,
        app,
        server,
        *,
        max_line: int,
        max_url: int,
        header_timeout: float,
        keepalive_timeout: float,
        socket_timeout: float | None,
        keep_alive: bool,
        log_format: str,
        debug: bool,
        url_scheme: str,
        multithread: bool,
        heartbeat=None,
        slow_requests=None,
    ) -> None:
        """``heartbeat``: None, or what the scheduler's loop stamps each turn
        (``beat()``, at least every ``interval`` s; ``release()`` when it ends:
        ``wsgisvc.watchdog.Beat``). ``slow_requests``: None, or what each
        request is given to while it is served (``begin``, ``end``:
        ``wsgisvc.watchdog.SlowRequests``)."""
        self.app = app
        self.server = server
        self.max_line = max_line
        self.max_url = max_url
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.socket_timeout = socket_timeout
        self.keep_alive = keep_alive
        self.debug = debug
        self.access_log = accesslog.AccessLog(
            log_format, accesslog.WRITER if multithread else None
        )
        self.heartbeat = heartbeat
        self.slow_requests = slow_requests
        self.stopping = False
        self._stop_grace = 0.0
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

    def stop(self, grace: float) -> None:
        """The server stops: every response from now on says ``Connection:
        close``, and a connection whose response went out kept alive before
        the stop waits ``grace`` seconds for its next request once that
        response ends, as idle ones do (``Scheduler.close_idle``), not the
        keep-alive timeout, which would hold the stop that long."""
        self._stop_grace = grace
        self.stopping = True

    def idle_timeout(self) -> float:
        """How long a connection waits for the first byte of its next request."""
        if self.stopping:
            return min(self.keepalive_timeout, self._stop_grace)
        return self.keepalive_timeout

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
            conn.client_ip, line, status, length, started, conn.rid, context
        )
        metrics.http_request_done(self.server.name, method, status, started)


class Connection:
    """One client connection: its socket, its parser, its requests in turn."""

    def __init__(self, core: Core, sock, address) -> None:
        self.core = core
        self.sock = sock
        self.parser = RequestParser(core.max_line, core.max_url)
        if isinstance(address, tuple):
            self.client_ip, port = address[0], str(address[1])
        else:  # a unix socket
            self.client_ip, port = "", ""
        environ = dict(core.environ)
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = self.client_ip, port
        try:
            name = sock.getsockname()
        except OSError:
            name = None
        if isinstance(name, tuple):
            environ["SERVER_NAME"], environ["SERVER_PORT"] = name[0], str(name[1])
        else:
            environ["SERVER_NAME"], environ["SERVER_PORT"] = "localhost", ""
        self._environ = environ
        self.deadline: float | None = time.monotonic() + core.header_timeout
        self.rid = ""
        self.closed = False
        self.linger_until = 0.0  # set by end(linger=True)
        self._done_at = 0.0  # when the last response went out

    # --- phase 1: the head, without a slot -------------------------------------

    def receive(self, data: bytes) -> bool:
        """Feed ``data`` read by a scheduler; True when the connection is
        ready for :meth:`serve`: a head is whole, or it must be refused.

        An empty ``data`` is the client's close (``closed`` is set). A refusal
        is answered by :meth:`serve`, in the serving phase.
        """
        if not data:
            self.close()
            return False
        parser = self.parser
        begun = parser.begun
        parser.feed(data)
        if not begun and self.deadline is None:
            self.deadline = time.monotonic() + self.core.header_timeout
        return parser.head_ready or parser.error is not None

    def read_head(self) -> bool:
        """Block until the next head is whole; False when the connection ended.

        Before the first byte of a keep-alive request the wait is
        ``core.idle_timeout()``; from then on the head deadline.
        """
        parser, sock = self.parser, self.sock
        if parser.head_ready or parser.error is not None:
            return True
        if self.deadline is None and not parser.begun:
            idle_until = time.monotonic() + self.core.idle_timeout()
        else:
            idle_until = None
        while True:
            until = self.deadline if idle_until is None else idle_until
            remaining = until - time.monotonic()
            if remaining <= 0:
                self.close()
                return False
            try:
                sock.settimeout(remaining)
                data = sock.recv(RECV_SIZE)
            except OSError:  # a timeout, a reset, a TLS error
                self.close()
                return False
            if self.receive(data):
                return True
            if self.closed:
                return False
            idle_until = None

    def idle_deadline(self) -> float:
        """When a selector should give up on this connection."""
        if self.deadline is not None:
            return self.deadline
        return time.monotonic() + self.core.idle_timeout()

    # --- phase 2: the request, with a slot -------------------------------------

    def serve(self) -> After:
        """Serve the oldest request (or refuse it); say what comes next."""
        parser = self.parser
        if not parser.head_ready:
            return self.reject(parser.error)
        message = parser.messages[0]
        if message.error is not None:
            return self.reject(message.error, message)
        core = self.core
        self.deadline = None
        # From when the request could be served: its head whole and the
        # response before it (pipelined) sent; slot queueing is inside.
        started = max(message.ready_at, self._done_at)
        try:
            environ, wants_keep = self._environ_for(message)
        except BadRequest as exc:
            return self.reject(exc, message)
        target = message.target.decode("latin-1")
        line = f"{message.method} {target} HTTP/{message.version}"
        response = Response(self, message, environ, wants_keep)
        context_before = accesslog.current_context()
        slow = core.slow_requests
        in_flight = (
            None if slow is None else slow.begin(message.method, target, started)
        )
        try:
            self.sock.settimeout(core.socket_timeout)
            response.run(core.app)
        except OSError as exc:  # the client went away while we answered
            LOG.debug("connection from %s ended: %s", self.client_ip, exc)
        finally:
            if in_flight is not None:
                slow.end(in_flight)
        core.request_done(
            self,
            message.method,
            line,
            response.status,
            response.sent,
            started,
            accesslog.context_made_since(context_before),
        )
        self.rid = ""
        self._done_at = time.monotonic()
        parser.pop()
        if parser.begun:  # the next head began in the same read: its deadline
            self.deadline = self._done_at + core.header_timeout
        # Not core.stopping here: a stop after the head went out with keep-alive
        # must not cut the connection under the client's next request; that
        # request has the stop's grace to begin (core.idle_timeout()), and is
        # answered with Connection: close.
        if response.keep and not response.broken and self._finish_body(message):
            return After.KEEP
        return self.end(linger=not message.complete)

    def _finish_body(self, message: Message) -> bool:
        """Drop what the application left of the body, up to DRAIN_LIMIT."""
        dropped = 0
        deadline = time.monotonic() + LINGER_SECONDS
        while not message.complete:
            dropped += message.body_bytes
            message.body.clear()
            message.body_bytes = 0
            remaining = deadline - time.monotonic()
            if message.error or dropped > DRAIN_LIMIT or remaining <= 0:
                return False
            try:
                self.sock.settimeout(remaining)
                data = self.sock.recv(RECV_SIZE)
            except OSError:
                return False
            if not data:
                return False
            self.parser.feed(data)
        return True

    def _environ_for(self, message: Message) -> tuple[dict, bool]:
        """The environ, and whether the client asked to keep the connection."""
        environ = self._environ.copy()
        lengths, codings, hosts = [], [], []
        expect = connection = ""
        for name, value in message.headers:
            key = _environ_key(name)
            if key is None:
                continue
            text = value.strip(b" \t").decode("latin-1")
            if key in environ and key.startswith("HTTP_"):
                environ[key] += "," + text
            else:
                environ[key] = text
            if key == "CONTENT_LENGTH":
                lengths.append(text)
            elif key == "HTTP_TRANSFER_ENCODING":
                codings.append(text)
            elif key == "HTTP_HOST":
                hosts.append(text)
            elif key == "HTTP_CONNECTION":
                connection = environ[key]
            elif key == "HTTP_EXPECT":
                expect = text
        version = message.version
        http11 = version != "1.0"
        target = message.target.decode("latin-1")
        path, query, authority = guard.split_target(target)
        if authority is not None:
            environ["HTTP_HOST"] = authority  # RFC 9112 3.2.2: the target wins
            hosts = [authority]
        guard.check_framing(lengths, codings, hosts, http11)
        if message.method == "CONNECT":
            raise guard.bad("CONNECT is not served")
        if path == "*" and message.method != "OPTIONS":
            raise guard.bad("asterisk-form is for OPTIONS only")
        environ["REQUEST_METHOD"] = message.method
        environ["SERVER_PROTOCOL"] = "HTTP/" + version
        environ["RAW_PATH_INFO"] = path
        environ["PATH_INFO"] = unquote(path, "latin-1") if "%" in path else path
        if query:  # absent when empty, as eventlet.wsgi did (apps rely on it)
            environ["QUERY_STRING"] = query
        tokens = guard.tokens(connection) if connection else ()
        message_keep = ("close" not in tokens) and (http11 or "keep-alive" in tokens)
        environ["wsgi.input"] = Input(
            self, message, http11 and expect.lower() == "100-continue"
        )
        return environ, message_keep

    # --- reading more of a body, refusing, closing -----------------------------

    def read_more(self, message: Message) -> None:
        """Receive and parse more of ``message``'s body (blocking)."""
        if message.error is None:
            try:
                data = self.sock.recv(RECV_SIZE)
            except TimeoutError:  # the client is there but its body stalled
                message.error = BadRequest(
                    "408 Request Timeout",
                    f"no body byte in client_socket_timeout "
                    f"({self.core.socket_timeout:g} s)",
                )
            except OSError as exc:  # a reset or a TLS error: gone all the same
                raise ClientGone(
                    f"client connection failed inside the request body: {exc}"
                ) from exc
            else:
                if not data:
                    raise ClientGone(
                        "client closed the connection inside the request body"
                    )
                self.parser.feed(data)
        if message.error is not None:
            raise message.error

    def reject(self, exc: BadRequest, message: Message | None = None) -> After:
        """Answer ``exc`` and close: after a framing error nothing is trusted.

        The refusal is a request like any other in the access log and the
        metrics, and its access line is its one INFO line (the reason, which
        the client is sent, is at DEBUG); the linger that follows holds no
        slot (see :class:`After`).
        """
        LOG.debug(
            "rejected request from %s with %s: %s",
            self.client_ip,
            exc.status,
            exc.reason,
        )
        self.answer_refusal(exc)
        if message is not None:
            method = message.method
            line = f"{method} {message.target.decode('latin-1')} HTTP/{message.version}"
            started = message.ready_at
        else:
            method, line, started = "-", "-", time.monotonic()
        self.core.request_done(self, method, line, exc.status, 0, started)
        return self.end(linger=True)

    def answer_refusal(self, exc: BadRequest) -> None:
        body = exc.reason.encode("latin-1", "replace") + b"\n"
        try:
            self.sock.settimeout(self.core.socket_timeout or LINGER_SECONDS)
            self.sock.sendall(
                b"HTTP/1.1 %s\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (exc.status.encode(), len(body), body)
            )
        except OSError:
            pass

    def end(self, linger: bool) -> After:
        """Close now, or shut for writing and leave the linger to the scheduler:
        closing with unread data would reset the connection and lose the answer."""
        if linger and not self.closed:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            else:
                self.linger_until = time.monotonic() + LINGER_SECONDS
                return After.LINGER
        self.close()
        return After.CLOSE

    def linger(self) -> None:
        """After :meth:`end` said LINGER: drop what the client still sends,
        blocking, up to DRAIN_LIMIT bytes or the linger deadline, then close."""
        sock, dropped = self.sock, 0
        try:
            while dropped <= DRAIN_LIMIT:
                remaining = self.linger_until - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
                data = sock.recv(RECV_SIZE)
                if not data:
                    break
                dropped += len(data)
        except (OSError, ValueError):
            pass
        self.close()

    def close(self) -> None:
        """Close the socket (once)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
