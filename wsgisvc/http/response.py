"""start_response, write and the framing of one response.

What the application hands over is checked at ``start_response``, before any
byte goes out: a status that is ``NNN reason``, header names that are tokens,
values without control characters (CR and LF would split the response) and
latin-1 encodable, a Content-Length that is digits, and one length however
many Content-Length headers say it (equal ones go out as one); the server
frames the body itself, so a ``Transfer-Encoding`` from the application is
refused. A check that fails raises in the application; if nothing was sent
yet the answer is a 500 (and the access line says so).

The body is framed by the application's Content-Length, or one computed for a
list body, or chunked for HTTP/1.1, or the close for HTTP/1.0; no body for
HEAD, 1xx, 204 and 304. The application's Content-Length is held to in
:meth:`Response.write`, the one way body bytes go out, whatever the shape of
the body: a body known to disagree with it before the head goes out (a list,
a first piece already too long) is a 500 with nothing of it sent; bytes past
it are dropped; a body that ends short of it ends the connection, which the
client would otherwise read the next response into. Whether the connection
stays open is decided once, in :meth:`Response._keep_alive`, when the head
goes out; afterwards only a broken response (:attr:`Response.broken`) can end
it.
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
    length = None
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
            if lower == "content-length":
                if not (value.isdigit() and value.isascii()):
                    raise ValueError(f"invalid Content-Length {value!r}")
                if length not in (None, int(value)):
                    raise ValueError(f"two Content-Lengths, {length} and {value}")
                length = int(value)
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
        "total",
        "dropped",
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
        self.length: int | None = None  # the body's, once the head says it
        self.total: int | None = None  # the whole body's, known before the head
        self.dropped = 0  # bytes past the application's Content-Length
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
            if not self._input_error():
                self._send(result)
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
        self._check_length()

    def _send(self, result) -> None:
        """Send the body ``result`` holds and end it; a list or tuple is
        measured first, so that its length is known before the head. A body
        that ran past its Content-Length is not iterated further: the rest
        would be dropped, and a body that never ends would hold the slot."""
        if type(result) in (list, tuple) and not self.head_sent:
            self.total = sum(map(len, result))
        for data in result:
            if data:
                self.write(data)
                if self.dropped:
                    break
        if not self.head_sent:  # no body: its length is known now
            self.total = 0
            self.write(b"")
        elif self.chunked:
            self.conn.sock.sendall(b"0\r\n\r\n")

    def _check_length(self) -> None:
        """Log what :meth:`write` did about a body that belied the head's
        Content-Length, once; a body that ended short breaks the response,
        so the connection ends: its next response would be misframed."""
        if self.broken or self.length is None:
            return  # a broken response was logged where it broke
        if self.dropped:
            LOG.error(
                "the application sent %d bytes past the Content-Length (%d) of "
                "%s: they were not sent",
                self.dropped,
                self.length,
                self.line(),
            )
        elif self.sent < self.length:
            self.broken = True
            LOG.error(
                "the application ended the body of %s %d bytes short of its "
                "Content-Length (%d): the connection is closed",
                self.line(),
                self.length - self.sent,
                self.length,
            )

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
        self.total = len(body)
        self.write(body)

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

    def write(self, data: bytes) -> None:
        """Send ``data`` (the WSGI ``write`` callable, and the body iterator's);
        never past the Content-Length of the head: the rest is dropped."""
        sock = self.conn.sock
        if not self.head_sent:
            head = self._head(data)
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
        length = self.length
        if length is not None and self.sent + len(data) > length:
            self.dropped += self.sent + len(data) - length
            data = data[: length - self.sent]
            if not data:
                return
        self.sent += len(data)
        if self.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        sock.sendall(data)

    def _head(self, first: bytes) -> bytes:
        """The status line and headers, framed, as bytes, for a body that
        begins with ``first``; only once they are whole does the response count
        as started (an error before is a 500, a known wrong length too)."""
        if self.headers is None:
            raise AssertionError("the application did not call start_response")
        status = self.status
        lines = [f"HTTP/1.1 {status}\r\n"]
        length = rid = None
        app_says_close = False
        for name, value in self.headers:
            lower = name.lower()
            if lower == "content-length":
                if length is not None:
                    continue  # the same length again (check_head): say it once
                length = int(value)
            elif lower == "x-openstack-request-id":
                rid = value
            elif lower == "connection":
                app_says_close = "close" in guard.tokens(value)
                continue
            lines.append(f"{name}: {value}\r\n")
        no_body_status = status[:3] in _NO_BODY_STATUS or status[0] == "1"
        no_body = no_body_status or self.message.method == "HEAD"
        total = self.total
        if length is not None and not no_body:
            if total is not None and total != length:
                raise ValueError(f"Content-Length {length} for a body of {total} bytes")
            if len(first) > length:
                raise ValueError(
                    f"Content-Length {length} for a body of {len(first)} bytes or more"
                )
        chunked = False
        framed = True
        if length is not None or no_body_status:
            pass  # the application's own Content-Length frames the body
        elif total is not None:
            length = total
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
