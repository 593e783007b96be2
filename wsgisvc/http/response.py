"""start_response, write and the body iterator: a WSGI response onto the protocol.

What the application hands over is checked at ``start_response``
(:func:`~wsgisvc.http.protocol.check_head`), before any byte goes out; a check
that fails raises in the application, and if nothing was sent yet the answer
is a 500 (and the access line says so). The protocol frames the head and the
body and holds the body to the application's Content-Length
(:meth:`Protocol.head <wsgisvc.http.protocol.Protocol.head>`,
:meth:`~wsgisvc.http.protocol.Protocol.body`): a body known to disagree with
it before the head goes out (a list, a first piece already too long) is a 500
with nothing of it sent; bytes past it are dropped; a body that ends short of
it ends the connection, which the client would otherwise read the next
response into.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING

from wsgisvc.http import accesslog
from wsgisvc.http.guard import BadRequest
from wsgisvc.http.protocol import check_head

if TYPE_CHECKING:
    from wsgisvc.http.body import Input
    from wsgisvc.http.protocol import Protocol
    from wsgisvc.http.scheduling import Transport

LOG = logging.getLogger(__name__)

CLIENT_GONE = "499 Client Closed Request"  # logged and counted, never sent


class Response:
    """start_response, write and the body iterator of one request."""

    __slots__ = (
        "protocol",
        "transport",
        "environ",
        "input",
        "debug",
        "timeout",
        "status",
        "headers",
        "broken",
        "failed",
        "total",
    )

    def __init__(
        self,
        protocol: Protocol,
        transport: Transport,
        environ: dict,
        debug: bool,
    ) -> None:
        self.protocol = protocol
        self.transport = transport
        self.environ = environ
        self.input: Input = environ["wsgi.input"]  # middleware may replace it
        self.debug = debug
        self.timeout = protocol.shared.limits.socket_timeout
        self.status = "500"  # what start_response said
        self.headers: list | None = None
        self.broken = False  # the response could not be finished as framed
        self.failed = False  # the application raised
        self.total: int | None = None  # the whole body's, known before the head

    def start_response(self, status: str, headers: list, exc_info=None):
        if exc_info is not None:
            try:
                if self.protocol.head_sent:
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
        try:
            result = app(self.environ, self.start_response)
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
        protocol = self.protocol
        if type(result) in (list, tuple) and not protocol.head_sent:
            self.total = sum(map(len, result))
        for data in result:
            if data:
                self.write(data)
                if protocol.dropped:
                    break
        if not protocol.head_sent:  # no body: its length is known now
            self.total = 0
            self.write(b"")
        else:
            end = protocol.end_body()
            if end:
                self.transport.send(end, self.timeout)

    def _check_length(self) -> None:
        """Log what the protocol did about a body that belied the head's
        Content-Length, once; a body that ended short breaks the response,
        so the connection ends: its next response would be misframed."""
        protocol = self.protocol
        if self.broken or protocol.length is None:
            return  # a broken response was logged where it broke
        if protocol.dropped:
            LOG.error(
                "the application sent %d bytes past the Content-Length (%d) of "
                "%s: they were not sent",
                protocol.dropped,
                protocol.length,
                self.line(),
            )
        elif protocol.short:
            self.broken = True
            LOG.error(
                "the application ended the body of %s %d bytes short of its "
                "Content-Length (%d): the connection is closed",
                self.line(),
                protocol.length - protocol.sent,
                protocol.length,
            )

    def _input_error(self) -> bool:
        """A malformed or stalled body is its refusal, and a client gone inside
        its body a 499 with nothing sent, whatever the application answered."""
        protocol = self.protocol
        if self.input.client_gone:
            self.broken = True
            if not protocol.head_sent:
                protocol.refusal(_GONE, status_only=True)
            return True
        error = self.input.error
        if error is None:
            return False
        self.broken = True
        if not protocol.head_sent:
            answer = protocol.refusal(error)
            try:
                self.transport.send(answer, self.timeout)
            except OSError:
                pass
        return True

    def _failed(self) -> None:
        if self._input_error():
            return
        LOG.exception("application failed on %s", self.line())
        self.failed = True
        if self.protocol.head_sent:
            self.broken = True
            return
        body = (
            traceback.format_exc().encode("utf-8", "replace")
            if self.debug
            else b"Internal Server Error\n"
        )
        self.headers = [("Content-Type", "text/plain")]
        self.status = "500 Internal Server Error"
        self.total = len(body)
        self.write(body)

    def line(self) -> str:
        message = self.protocol.request.message
        return f"{message.method} {message.target.decode('latin-1')}"

    def write(self, data: bytes) -> None:
        """Send ``data`` (the WSGI ``write`` callable, and the body iterator's);
        the head goes out with the first piece."""
        protocol = self.protocol
        if protocol.head_sent:
            data = protocol.body(data)
            if data:
                self.transport.send(data, self.timeout)
            return
        if self.headers is None:
            raise AssertionError("the application did not call start_response")
        head = protocol.head(
            self.status,
            self.headers,
            data,
            self.total,
            accesslog.date_header(),
            self.failed,
        )
        self.transport.send(head + protocol.body(data), self.timeout)


_GONE = BadRequest(CLIENT_GONE, "client closed the connection inside the request body")
