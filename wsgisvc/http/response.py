"""start_response, write and the framing of one response.

What the application hands over is checked at ``start_response``, before any
byte goes out: a status that is ``NNN reason``, header names that are tokens,
values without control characters (CR and LF would split the response) and
latin-1 encodable, a Content-Length that is digits; the server frames the
body itself, so a ``Transfer-Encoding`` from the application is refused. A
check that fails raises in the application; if nothing was sent yet the
answer is a 500 (and the access line says so).

The body is framed by the application's Content-Length, or one computed for a
list body, or chunked for HTTP/1.1, or the close for HTTP/1.0; no body for
HEAD, 1xx, 204 and 304. Whether the connection stays open is decided once, in
:meth:`Response._keep_alive`, when the head goes out; afterwards only a broken
response (:attr:`Response.broken`) can end it.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import TYPE_CHECKING

from wsgisvc.http import accesslog, guard
from wsgisvc.http.body import DRAIN_LIMIT

if TYPE_CHECKING:
    from wsgisvc.http.core import Connection
    from wsgisvc.http.parser import Message

LOG = logging.getLogger(__name__)

_NO_BODY_STATUS = ("1", "204", "304")
CLIENT_GONE = "499 Client Closed Request"  # logged and counted, never sent
_STATUS = re.compile(r"[1-9][0-9]{2} [^\x00-\x08\x0a-\x1f\x7f]*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")
_checked_names: set[str] = set()  # header names already found to be tokens


def check_head(status: str, headers: list) -> None:
    """Raise ValueError or TypeError for a status or header the wire cannot carry."""
    if type(status) is not str or not _STATUS.fullmatch(status):
        raise ValueError(f"invalid response status {status!r}")
    for name, value in headers:
        if type(name) is not str or type(value) is not str:
            raise TypeError(f"response header {name!r}: {value!r} is not two str")
        if name not in _checked_names:
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"invalid response header name {name!r}")
            if len(_checked_names) < 1024:
                _checked_names.add(name)
        if not (value.isascii() and value.isprintable()) and _BAD_VALUE.search(value):
            raise ValueError(f"invalid value for response header {name}: {value!r}")
        if len(name) in (14, 17):
            lower = name.lower()
            if lower == "content-length" and not (value.isdigit() and value.isascii()):
                raise ValueError(f"invalid Content-Length {value!r}")
            if lower == "transfer-encoding":
                raise ValueError("Transfer-Encoding is the server's to set")


class Response:
    """start_response, write and the response framing for one request."""

    __slots__ = (
        "conn",
        "message",
        "environ",
        "wants_keep",
        "status",
        "headers",
        "head_sent",
        "keep",
        "broken",
        "failed",
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
        self.wants_keep = wants_keep  # the client's side of keep-alive
        self.status = "500"
        self.headers: list | None = None
        self.head_sent = False
        self.keep = False  # announced with the head: see _keep_alive()
        self.broken = False  # the response could not be finished as framed
        self.failed = False  # the application raised
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
        check_head(status, headers)
        self.status = status
        self.headers = headers
        return self.write

    def run(self, app) -> None:
        """Call ``app`` and send what it returns; OSError (the client went
        away) propagates, anything else the application raises is a 500."""
        environ = self.environ
        try:
            result = app(environ, self.start_response)
        except (Exception, SystemExit):
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
            self.broken = True
            raise
        except (Exception, SystemExit):
            self._failed()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except (Exception, SystemExit):  # as from app(): the access line
                    LOG.exception("close() of the response of %s failed", self.line())
        if self.length is not None and self.sent != self.length and not self.chunked:
            self.broken = True  # the app's Content-Length was wrong: framing is lost

    def _input_error(self) -> bool:
        """A malformed or stalled body is its refusal, and a client gone inside
        its body a 499 with nothing sent, whatever the application answered."""
        if self.input.client_gone:
            self.broken = True
            if not self.head_sent:
                self.status = CLIENT_GONE
                self.head_sent = True  # nothing may go out: nobody reads it
            return True
        error = self.input.error
        if error is None:
            return False
        self.broken = True
        if not self.head_sent:
            self.status = error.status
            self.head_sent = True
            self.conn.answer_refusal(error)
        return True

    def _failed(self) -> None:
        if self._input_error():
            return
        LOG.exception("application failed on %s", self.line())
        self.failed = True
        if self.head_sent:
            self.broken = True
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
        return message.body_left is not None and message.body_left <= DRAIN_LIMIT

    def _keep_alive(self, app_says_close: bool, framed: bool) -> bool:
        """The one decision: does the connection stay open after this response?"""
        return (
            self.wants_keep
            and self.conn.core.keep_alive
            and not app_says_close
            and framed  # an HTTP/1.0 body without a length ends with the close
            and not self.failed
            and not self.conn.core.stopping
            and self._rest_is_small()
        )

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
        """The status line and headers, framed, as bytes; only once they are
        whole does the response count as started (an error before is a 500)."""
        if self.headers is None:
            raise AssertionError("the application did not call start_response")
        status = self.status
        lines = [f"HTTP/1.1 {status}\r\n"]
        length = rid = None
        app_says_close = False
        for name, value in self.headers:
            lower = name.lower()
            if lower == "content-length":
                length = int(value)
            elif lower == "x-openstack-request-id":
                rid = value
            elif lower == "connection":
                app_says_close = "close" in guard.tokens(value)
                continue
            lines.append(f"{name}: {value}\r\n")
        no_body_status = status[:3] in _NO_BODY_STATUS or status[0] == "1"
        no_body = no_body_status or self.message.method == "HEAD"
        chunked = False
        framed = True
        if length is not None or no_body_status:
            pass  # the application's own Content-Length frames the body
        elif last or self.length is not None:
            length = self.length if self.length is not None else len(first)
            lines.append(f"Content-Length: {length}\r\n")
        elif self.message.version != "1.0":
            if self.message.method != "HEAD":
                chunked = True
                lines.append("Transfer-Encoding: chunked\r\n")
        else:
            framed = False
        keep = self._keep_alive(app_says_close, framed)
        if not keep:
            lines.append("Connection: close\r\n")
        elif self.message.version == "1.0":  # it asked for keep-alive: say yes
            lines.append("Connection: keep-alive\r\n")
        lines.append(accesslog.date_header())
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        self.head_sent = True
        self.keep, self.chunked, self.no_body = keep, chunked, no_body
        self.length = None if no_body else length
        if rid is not None:
            self.conn.rid = rid
        return head
