"""start_response, write and the framing of one response.

Content-Length from the application, or computed for a list body, or chunked
for HTTP/1.1, or the close for HTTP/1.0; no body for HEAD, 1xx, 204 and 304;
keep-alive decided once, when the head goes out.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING

from wsgisvc.http import accesslog, guard
from wsgisvc.http.body import DRAIN_LIMIT

if TYPE_CHECKING:
    from wsgisvc.http.core import Connection
    from wsgisvc.http.parser import Message

LOG = logging.getLogger(__name__)

_NO_BODY_STATUS = ("1", "204", "304")


class Response:
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
                if "close" in guard.tokens(value):
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
