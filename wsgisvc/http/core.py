"""The HTTP/1.1 core: one request, head to last byte, on plain blocking sockets.

A :class:`Connection` is driven by a scheduler (``wsgisvc.http.green`` or
``wsgisvc.http.threaded``) in two phases, so that a connection holds a pool
slot only while its request is served:

1. :meth:`Connection.read_head` (or :meth:`Connection.receive` from a
   selector) until the next request's head is whole: no slot is held; the head
   must arrive within ``header_timeout`` seconds of its first byte (the first
   request: of the accept), whole, not per read;
2. :meth:`Connection.serve` with a slot: environ, the application, the
   response, the access log. It returns whether the connection stays open.

Only ``recv``, ``sendall``, ``settimeout`` and ``shutdown`` are called on the
socket, so a green socket (eventlet) and a real one (threads) both work.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
import traceback
from urllib.parse import unquote

from wsgisvc.http import accesslog, guard
from wsgisvc.http.guard import BadRequest
from wsgisvc.http.parser import Message, RequestParser

LOG = logging.getLogger(__name__)

RECV_SIZE = 65536
# After an early answer (the application did not read the whole body), this
# much of the rest is read and dropped so the connection can be kept; a longer
# rest closes the connection.
DRAIN_LIMIT = 65536
# After a refusal, the connection is shut for writing and reads are dropped
# for at most this long (and DRAIN_LIMIT bytes): closing with unread data
# would reset the connection and lose the answer on the way.
LINGER_SECONDS = 1.0

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NO_BODY_STATUS = ("1", "204", "304")
# Header names as environ keys, computed once per name.
_ENVIRON_KEYS: dict[bytes, str] = {
    b"content-type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
}


def _environ_key(name: bytes) -> str:
    key = _ENVIRON_KEYS.get(name)
    if key is None:
        lower = name.lower()
        key = _ENVIRON_KEYS.get(lower)
        if key is None:
            key = "HTTP_" + lower.decode("ascii").upper().replace("-", "_")
        if len(_ENVIRON_KEYS) < 1024:
            _ENVIRON_KEYS[name] = key
    return key


class ClientGone(ConnectionError):
    """The client closed the connection inside the request body."""


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
    ) -> None:
        self.app = app
        self.server = server
        self.max_line = max_line
        self.max_url = max_url
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.socket_timeout = socket_timeout
        self.keep_alive = keep_alive
        self.debug = debug
        self.access_log = accesslog.AccessLog(log_format)
        self.stopping = False
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

    def request_done(
        self,
        conn: Connection,
        method: str,
        line: str,
        status: str,
        length: int,
        started: float,
    ) -> None:
        """The one place a request ends, answered or cut: its method, status
        line, body bytes sent and start (monotonic). The access line is
        written here, and here is where request metrics belong."""
        self.access_log.write(conn.client_ip, line, status, length, started, conn.rid)


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
        self.refusal: BadRequest | None = None  # a head to answer and close on

    # --- phase 1: the head, without a slot -------------------------------------

    def receive(self, data: bytes) -> bool:
        """Feed ``data`` read by a scheduler; True when the connection is
        ready for :meth:`serve`: a head is whole, or it must be refused.

        An empty ``data`` is the client's close (``closed`` is set). A refusal
        is answered by :meth:`serve`, in the serving phase: its lingering close
        blocks, which a selector thread must not.
        """
        if not data:
            self.close()
            return False
        parser = self.parser
        begun = parser.begun
        try:
            parser.feed(data)
        except BadRequest as exc:
            self.refusal = exc
            return True
        if not begun and self.deadline is None:
            self.deadline = time.monotonic() + self.core.header_timeout
        return parser.head_ready

    def read_head(self) -> bool:
        """Block until the next head is whole; False when the connection ended.

        Before the first byte of a keep-alive request the wait is
        ``keepalive_timeout``; from then on the head deadline.
        """
        parser, sock = self.parser, self.sock
        if parser.head_ready or self.refusal is not None:
            return True
        if self.deadline is None and not parser.begun:
            idle_until = time.monotonic() + self.core.keepalive_timeout
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
        return time.monotonic() + self.core.keepalive_timeout

    # --- phase 2: the request, with a slot -------------------------------------

    def serve(self) -> bool:
        """Serve the oldest request; True when the connection stays open."""
        if self.refusal is not None:
            self.reject(self.refusal)
            return False
        core = self.core
        message = self.parser.messages[0]
        self.deadline = None
        started = time.monotonic()
        try:
            environ, wants_keep = self._environ_for(message)
        except BadRequest as exc:
            self.reject(exc)
            return False
        target = message.target.decode("latin-1")
        line = f"{message.method} {target} HTTP/{message.version}"
        response = _Response(self, message, environ, wants_keep)
        try:
            self.sock.settimeout(core.socket_timeout)
            response.run(core.app)
        except OSError as exc:  # the client went away while we answered
            LOG.debug("connection from %s ended: %s", self.client_ip, exc)
            response.keep = False
        core.request_done(
            self, message.method, line, response.status, response.sent, started
        )
        self.rid = ""
        self.parser.messages.popleft()
        # Not core.stopping here: a stop after the head went out with keep-alive
        # must not cut the connection under the client's next request; the
        # connection is closed idle (after the grace) or after that request.
        if not response.keep or not self._finish_body(message):
            self.close(linger=not message.complete)
            return False
        return True

    def _finish_body(self, message: Message) -> bool:
        """Drop what the application left of the body, up to DRAIN_LIMIT."""
        if message.complete:
            return True
        dropped = 0
        deadline = time.monotonic() + LINGER_SECONDS
        while not message.complete:
            dropped += message.body_bytes
            message.body.clear()
            message.body_bytes = 0
            remaining = deadline - time.monotonic()
            if dropped > DRAIN_LIMIT or remaining <= 0:
                return False
            try:
                self.sock.settimeout(remaining)
                data = self.sock.recv(RECV_SIZE)
                if not data:
                    return False
                self.parser.feed(data)
            except (OSError, BadRequest):
                return False
        return True

    def _environ_for(self, message: Message) -> tuple[dict, bool]:
        """The environ, and whether the client asked to keep the connection."""
        environ = self._environ.copy()
        lengths, codings, hosts = [], [], []
        expect = connection = ""
        for name, value in message.headers:
            key = _environ_key(name)
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
        environ["REQUEST_METHOD"] = message.method
        environ["SERVER_PROTOCOL"] = "HTTP/" + version
        environ["RAW_PATH_INFO"] = path
        environ["PATH_INFO"] = unquote(path, "latin-1") if "%" in path else path
        if query:  # absent when empty, as eventlet.wsgi did (apps rely on it)
            environ["QUERY_STRING"] = query
        tokens = _tokens(connection) if connection else ()
        message_keep = ("close" not in tokens) and (http11 or "keep-alive" in tokens)
        environ["wsgi.input"] = Input(
            self, message, http11 and expect.lower() == "100-continue"
        )
        return environ, message_keep and not message.upgrade

    # --- reading more of a body, refusing, closing -----------------------------

    def read_more(self, message: Message) -> None:
        """Receive and parse more of ``message``'s body (blocking)."""
        data = self.sock.recv(RECV_SIZE)
        if not data:
            raise ClientGone("client closed the connection inside the request body")
        self.parser.feed(data)

    def reject(self, exc: BadRequest) -> None:
        """Answer ``exc`` and close: after a framing error nothing is trusted."""
        LOG.info(
            "rejected request from %s with %s: %s",
            self.client_ip,
            exc.status,
            exc.reason,
        )
        body = exc.reason.encode("latin-1", "replace") + b"\n"
        try:
            self.sock.settimeout(self.core.socket_timeout or LINGER_SECONDS)
            self.sock.sendall(
                b"HTTP/1.1 %s\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (exc.status.encode(), len(body), body)
            )
        except OSError:
            pass
        self.close(linger=True)

    def close(self, linger: bool = False) -> None:
        """Close the socket; with ``linger``, drop what the client still sends
        for a bounded time first, so the answer is not lost to a reset."""
        if self.closed:
            return
        self.closed = True
        sock = self.sock
        if linger:
            try:
                sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + LINGER_SECONDS
                dropped = 0
                while dropped <= DRAIN_LIMIT:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    sock.settimeout(remaining)
                    data = sock.recv(RECV_SIZE)
                    if not data:
                        break
                    dropped += len(data)
            except (OSError, ValueError):
                pass
        try:
            sock.close()
        except OSError:
            pass


def _tokens(value: str) -> set[str]:
    """``Connection`` as the token list it is (RFC 9110 section 7.6.1)."""
    return {token.strip().lower() for token in value.split(",")}


class Input:
    """``wsgi.input``: the body as the parser frames it, read on demand.

    ``100 Continue`` is sent on the first read, and only to HTTP/1.1 clients
    that asked for it. A malformed body raises :class:`BadRequest`; the
    server answers 400 whatever the application does with the exception.
    """

    def __init__(self, conn: Connection, message: Message, expect: bool) -> None:
        self._conn = conn
        self._message = message
        self._expect = expect
        self.error: BadRequest | None = None

    @property
    def awaiting_continue(self) -> bool:
        """True while a client that asked for ``100 Continue`` did not get it."""
        return self._expect

    def _fill(self) -> bool:
        """Wait until body bytes are buffered; False at the body's end."""
        message = self._message
        if message.body:
            return True
        conn = self._conn
        if self._expect and not message.complete:
            self._expect = False
            conn.sock.sendall(_CONTINUE)
        try:
            while not message.body and not message.complete:
                conn.read_more(message)
        except BadRequest as exc:
            self.error = exc
            raise
        return bool(message.body)

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size >= 0:
            return self._take(size, newline=False)
        message, parts = self._message, []
        while self._fill():
            parts.extend(message.body)
            message.body.clear()
            message.body_bytes = 0
        return b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        limit = size if size is not None and size >= 0 else sys.maxsize
        return self._take(limit, newline=True)

    def _take(self, size: int, newline: bool) -> bytes:
        """Up to ``size`` bytes; with ``newline``, up to and with a b"\\n"."""
        message, parts, wanted = self._message, [], size
        while wanted > 0 and self._fill():
            piece = message.body.popleft()
            end = piece.find(b"\n") + 1 if newline else 0
            cut = min(end or len(piece), wanted)
            if cut < len(piece):
                message.body.appendleft(piece[cut:])
                piece = piece[:cut]
            parts.append(piece)
            wanted -= cut
            message.body_bytes -= cut
            if end and cut == end:
                break
        return b"".join(parts)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        while line := self.readline():
            lines.append(line)
        return lines

    def __iter__(self):
        return iter(self.readline, b"")


class _Response:
    """start_response, write and the response framing for one request."""

    __slots__ = (
        "conn",
        "message",
        "environ",
        "status",
        "headers",
        "head_sent",
        "keep",
        "sent",
        "chunked",
        "length",
        "no_body",
        "input",
    )

    def __init__(
        self, conn: Connection, message: Message, environ: dict, wants_keep: bool
    ) -> None:
        self.conn = conn
        self.message = message
        self.environ = environ
        self.status = "500"
        self.headers: list | None = None
        self.head_sent = False
        self.keep = wants_keep and conn.core.keep_alive
        self.sent = 0
        self.chunked = False
        self.length: int | None = None
        self.no_body = False
        self.input = environ["wsgi.input"]  # middleware may replace the environ's

    def start_response(self, status: str, headers: list, exc_info=None):
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.headers is not None:
            raise AssertionError("start_response called twice without exc_info")
        self.status = status
        self.headers = headers
        return self.write

    def run(self, app) -> None:
        environ = self.environ
        try:
            result = app(environ, self.start_response)
        except Exception:
            self._failed()
            return
        try:
            if self._input_error():
                return
            if type(result) in (list, tuple) and self.length is None:
                self.length = sum(map(len, result))
                if len(result) == 1:
                    self.write(result[0], True)
                    return
            for data in result:
                if data:
                    self.write(data)
            if not self.head_sent:
                self.write(b"", True)
            elif self.chunked:
                self.conn.sock.sendall(b"0\r\n\r\n")
        except OSError:
            raise
        except Exception:
            self._failed()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    LOG.exception("close() of the response of %s failed", self.line())
        if self.length is not None and self.sent != self.length and not self.chunked:
            self.keep = False  # the app's Content-Length was wrong: framing is lost

    def _input_error(self) -> bool:
        """A malformed body is a 400, whatever the application answered."""
        error = self.input.error
        if error is None:
            return False
        if self.head_sent:
            self.keep = False
        else:
            self.status = error.status
            self.conn.reject(error)
            self.head_sent = True
        self.keep = False
        return True

    def _failed(self) -> None:
        if self._input_error():
            return
        LOG.exception("application failed on %s", self.line())
        self.keep = False
        if self.head_sent:
            return
        body = (
            traceback.format_exc().encode("utf-8", "replace")
            if self.conn.core.debug
            else b"Internal Server Error\n"
        )
        self.headers = [("Content-Type", "text/plain")]
        self.status = "500 Internal Server Error"
        self.length = len(body)
        self.write(body, True)

    def _rest_is_small(self) -> bool:
        """True when what the application left of the body can be dropped
        (DRAIN_LIMIT) to keep the connection; a chunked rest is unknown."""
        message = self.message
        if message.complete:
            return True
        if self.input.awaiting_continue:
            return False  # the client holds its body back: nothing to drop
        length = self.environ.get("CONTENT_LENGTH")
        return length is not None and int(length) - message.received <= DRAIN_LIMIT

    def line(self) -> str:
        message = self.message
        return f"{message.method} {message.target.decode('latin-1')}"

    def write(self, data: bytes, last: bool = False) -> None:
        """Send ``data`` (the WSGI ``write`` callable, and the body iterator's)."""
        sock = self.conn.sock
        if not self.head_sent:
            head = self._head(data, last)
            if self.no_body or not data:
                sock.sendall(head)
                return
            self.sent = len(data)
            if self.chunked:
                data = b"%x\r\n%s\r\n" % (len(data), data)
            sock.sendall(head + data)
            return
        if not data or self.no_body:
            return
        self.sent += len(data)
        if self.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        sock.sendall(data)

    def _head(self, first: bytes, last: bool) -> bytes:
        """The status line and headers, framed; decides keep-alive."""
        if self.headers is None:
            raise AssertionError("the application did not call start_response")
        self.head_sent = True
        status = self.status
        lines = [f"HTTP/1.1 {status}\r\n"]
        length = None
        conn = self.conn
        for name, value in self.headers:
            lower = name.lower()
            if lower == "content-length":
                length = int(value)
            elif lower == "x-openstack-request-id":
                conn.rid = value
            elif lower == "connection":
                if "close" in _tokens(value):
                    self.keep = False
                continue
            lines.append(f"{name}: {value}\r\n")
        self.no_body = (
            status[:3] in _NO_BODY_STATUS
            or status[0] == "1"
            or self.message.method == "HEAD"
        )
        if length is not None:
            pass  # the application's own Content-Length frames the body
        elif status[:3] in _NO_BODY_STATUS or status[0] == "1":
            pass
        elif last or self.length is not None:
            length = self.length if self.length is not None else len(first)
            lines.append(f"Content-Length: {length}\r\n")
        elif self.message.version != "1.0":
            if self.message.method != "HEAD":
                self.chunked = True
                lines.append("Transfer-Encoding: chunked\r\n")
        else:
            self.keep = False  # HTTP/1.0 without a length: the close ends it
        self.length = None if self.no_body else length
        if conn.core.stopping or not self._rest_is_small():
            self.keep = False
        if not self.keep:
            lines.append("Connection: close\r\n")
        elif self.message.version == "1.0":  # it asked for keep-alive: say yes
            lines.append("Connection: keep-alive\r\n")
        lines.append(accesslog.date_header())
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")
