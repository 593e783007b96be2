"""One connection's HTTP/1.1, without I/O: bytes and time in, events and bytes out.

A :class:`Protocol` makes every HTTP decision for one connection: how a
request is framed (through :mod:`~wsgisvc.http.parser`, within
:class:`~wsgisvc.http.limits.Limits`), whether its head may reach the
application (:mod:`~wsgisvc.http.guard` and the rules here), how a response is
framed and held to its length, whether the connection stays open after it,
what is refused and with which bytes, what a stop does to each state, and
until when the connection may wait for its next bytes. It holds no socket,
reads no clock, starts no thread and takes no lock: whoever drives it gives
it what was received and the time (:meth:`Protocol.receive`), asks it what
comes next (:meth:`Protocol.next_event`) and until when to wait
(:attr:`Protocol.deadline`), and sends the bytes its methods return. So it is
tested without sockets, on a clock the test sets.

A connection's life, as the methods see it:

1. waiting for a head, holding nothing: :meth:`~Protocol.receive` until
   :attr:`~Protocol.ready`, or close at :attr:`~Protocol.deadline` (the head's
   deadline once a byte came, the keep-alive's before);
2. serving, in a request slot: :meth:`~Protocol.next_event` gives the
   :class:`Request` (or the :class:`Refusal` to answer with
   :meth:`~Protocol.refusal`); its body comes through :meth:`~Protocol.receive`
   as it is read; the response goes out as :meth:`~Protocol.head`,
   :meth:`~Protocol.body` and :meth:`~Protocol.end_body`;
3. after it: :meth:`~Protocol.response_ended` says :attr:`After.KEEP` (back
   to 1), :attr:`After.DRAIN` (the body's unread rest must be read and
   dropped first, within :attr:`~Protocol.deadline`), :attr:`After.LINGER`
   (shut for writing; :meth:`~Protocol.drop` what still comes until
   :attr:`~Protocol.deadline`, then close) or :attr:`After.CLOSE`.
"""

from __future__ import annotations

import enum
import re

from wsgisvc.http import guard
from wsgisvc.http.guard import BadRequest
from wsgisvc.http.limits import DRAIN_LIMIT, LINGER_SECONDS, Limits
from wsgisvc.http.parser import Message, RequestParser

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_STATUS = re.compile(r"[1-9][0-9]{2} [^\x00-\x08\x0a-\x1f\x7f]*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")
_checked_names: set[str] = set()  # header names already found to be tokens

# The request headers the head checks read, by their name as sent.
_FRAMING = {
    b"content-length": "length",
    b"transfer-encoding": "coding",
    b"host": "host",
    b"connection": "connection",
    b"expect": "expect",
}
_framing_names: dict[bytes, str | None] = {}


def _framing_role(name: bytes) -> str | None:
    try:
        return _framing_names[name]
    except KeyError:
        role = _FRAMING.get(name.lower())
        if len(_framing_names) < 1024:
            _framing_names[name] = role
        return role


class After(enum.Enum):
    """What the connection does once a response went out."""

    KEEP = "keep"  # wait for the next request's head
    CLOSE = "close"  # close now
    # Read and drop the rest of the request's body (receive()), then ask again.
    DRAIN = "drain"
    # Shut for writing: drop what the client still sends (drop()) until the
    # deadline, then close. Closing with unread data would reset the
    # connection and lose the answer on the way.
    LINGER = "linger"


class Shared:
    """What every connection of one server shares: its limits and its stop."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.stopping = False
        self.stop_grace = 0.0

    def stop(self, grace: float) -> None:
        """The server stops: every response from now on says ``Connection:
        close``, and a connection kept alive by a response that went out
        before waits ``grace`` seconds for its next request, as idle ones do,
        not the keep-alive timeout, which would hold the stop that long."""
        self.stop_grace = grace
        self.stopping = True

    def idle_timeout(self) -> float:
        """How long a connection waits for the first byte of its next request."""
        keepalive = self.limits.keepalive_timeout
        return min(keepalive, self.stop_grace) if self.stopping else keepalive


class Request:
    """The event of a request whose head may reach the application."""

    __slots__ = (
        "message",
        "target",
        "path",
        "query",
        "authority",
        "keep",
        "expect_continue",
    )

    def __init__(self, message: Message, target: str, keep: bool) -> None:
        self.message = message
        self.target = target  # as sent, decoded as latin-1
        self.path, self.query, self.authority = guard.split_target(target)
        self.keep = keep  # the client's side of keep-alive
        self.expect_continue = False

    @property
    def line(self) -> str:
        return _request_line(self.message, self.target)


class Refusal:
    """The event of a request refused before the application: answer
    :meth:`Protocol.refusal` and end the connection."""

    __slots__ = ("error", "message")

    def __init__(self, error: BadRequest, message: Message | None) -> None:
        self.error = error
        self.message = message  # None: its head was never whole

    @property
    def line(self) -> str:
        message = self.message
        if message is None:
            return "-"
        return _request_line(message, message.target.decode("latin-1"))


def _request_line(message: Message, target: str) -> str:
    """A request's line as the access log shows it."""
    return f"{message.method} {target} HTTP/{message.version}"


def check_head(status: str, headers: list) -> None:
    """Raise ValueError or TypeError for a response status or header the
    wire cannot carry (CR and LF would split the response): a status that is
    not ``NNN reason``, a name that is not a token, a value with a control
    character or past latin-1, a Content-Length that is not digits, two that
    differ, or a ``Transfer-Encoding`` (the server frames the body)."""
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


class Protocol:
    """HTTP/1.1 for one connection (see the module's page for its life)."""

    __slots__ = (
        "shared",
        "parser",
        "deadline",
        "closed",
        "request",
        "status",
        "request_id",
        "head_sent",
        "keep",
        "chunked",
        "no_body",
        "length",
        "sent",
        "dropped",
        "continued",
        "_done_at",
        "_dropped",
    )

    def __init__(self, shared: Shared, now: float) -> None:
        """A connection accepted (and handshaken, with TLS) at ``now``: its
        first head is due ``header_timeout`` seconds from then."""
        limits = shared.limits
        self.shared = shared
        self.parser = RequestParser(limits.max_line, limits.max_url)
        # When waiting for bytes ends: the head's deadline, the keep-alive's,
        # a drain's or a linger's; None while a request is served (a body
        # read or a send waits the socket timeout).
        self.deadline: float | None = now + limits.header_timeout
        self.closed = False  # nothing more is read or sent
        self.request: Request | None = None  # the one being served
        self._done_at = 0.0  # when the last response went out
        self._dropped = 0  # bytes dropped: draining, lingering
        self._new_response()

    def _new_response(self) -> None:
        self.status = "500"  # the status line of the response under way
        self.request_id = ""  # its x-openstack-request-id: the access line's
        self.head_sent = False
        self.keep = False  # announced with the head
        self.chunked = False
        self.no_body = False
        self.length: int | None = None  # the body's, once the head says it
        self.sent = 0  # body bytes sent
        self.dropped = 0  # body bytes past the head's Content-Length
        self.continued = False  # a 100 Continue went out

    # --- receiving --------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        """``data`` arrived at ``now``; ``b""`` is the client's close.

        While waiting for a head, the first byte of one starts its deadline.
        """
        if not data:
            self.closed = True
            return
        self.parser.feed(data, now)
        if self.deadline is None and self.request is None:
            # The first bytes after a response kept alive: the head's clock.
            self.deadline = now + self.shared.limits.header_timeout

    @property
    def ready(self) -> bool:
        """A request (or a refusal) is there to serve: give it a slot."""
        parser = self.parser
        return parser.head_ready or parser.error is not None

    @property
    def begun(self) -> bool:
        """Bytes of the next request arrived (a stop lets it be served)."""
        return self.parser.begun

    def wait_deadline(self, now: float) -> float:
        """Until when to wait for the next bytes of a head (the keep-alive
        timeout counts from ``now`` before its first byte)."""
        if self.deadline is not None:
            return self.deadline
        return now + self.shared.idle_timeout()

    # --- serving ----------------------------------------------------------------

    def next_event(self) -> Request | Refusal:
        """The oldest request, checked, or its refusal (call when
        :attr:`ready`)."""
        parser = self.parser
        if not parser.head_ready:
            return Refusal(parser.error, None)
        message = parser.messages[0]
        if message.error is not None:
            return Refusal(message.error, message)
        try:
            request = self._check(message)
        except BadRequest as exc:
            return Refusal(exc, message)
        self.deadline = None
        self.request = request
        self._new_response()
        return request

    def _check(self, message: Message) -> Request:
        """The head checks llhttp leaves to us, and what the client asked for."""
        lengths, codings, hosts = [], [], []
        connection = expect = None
        for name, value in message.headers:
            role = _framing_role(name)
            if role is None:
                continue
            text = value.strip(b" \t").decode("latin-1")
            if role == "length":
                lengths.append(text)
            elif role == "coding":
                codings.append(text)
            elif role == "host":
                hosts.append(text)
            elif role == "connection":
                connection = text if connection is None else f"{connection},{text}"
            else:
                expect = text
        http11 = message.version != "1.0"
        target = message.target.decode("latin-1")
        tokens = guard.tokens(connection) if connection else ()
        keep = ("close" not in tokens) and (http11 or "keep-alive" in tokens)
        request = Request(message, target, keep)
        # The Host lines are checked as sent, absolute-form or not (RFC 9112
        # 3.2); then the target's authority is the request's host (3.2.2).
        guard.check_framing(lengths, codings, hosts, http11)
        if message.method == "CONNECT":
            raise guard.bad("CONNECT is not served")
        if request.path == "*" and message.method != "OPTIONS":
            raise guard.bad("asterisk-form is for OPTIONS only")
        request.expect_continue = (
            http11 and expect is not None and expect.lower() == "100-continue"
        )
        return request

    def continue_bytes(self) -> bytes:
        """What to send before the body is first read: ``100 Continue``,
        once, to an HTTP/1.1 client that asked for it and whose body did not
        come whole already, before the response's head; else nothing."""
        request = self.request
        if (
            request.expect_continue
            and not self.continued
            and not self.head_sent
            and not request.message.complete
        ):
            self.continued = True
            return _CONTINUE
        return b""

    @property
    def awaiting_continue(self) -> bool:
        """The client holds its body back until a 100 Continue it did not get."""
        request = self.request
        return request.expect_continue and not self.continued

    def stalled(self) -> BadRequest:
        """No body byte came within the socket timeout: the request's 408."""
        message = self.request.message
        if message.error is None:
            message.error = BadRequest(
                "408 Request Timeout",
                f"no body byte in client_socket_timeout "
                f"({self.shared.limits.socket_timeout:g} s)",
            )
        return message.error

    # --- the response ------------------------------------------------------------

    def head(
        self,
        status: str,
        headers: list,
        first: bytes,
        total: int | None,
        date: str,
        failed: bool = False,
    ) -> bytes:
        """The status line and headers (checked by :func:`check_head`) of a
        response whose body begins with ``first`` and is ``total`` bytes
        long when that is known before the head (a list body); ``date``, the
        ``Date`` header's line (the caller's clock). ValueError
        when the application's Content-Length is known wrong already: nothing
        went out. ``failed``: the application failed, this is its 500.

        The body is framed by the application's Content-Length, or ``total``,
        or chunked for HTTP/1.1, or the close for HTTP/1.0; no body for HEAD,
        1xx, 204 and 304. Whether the connection stays open is decided here,
        once.
        """
        message = self.request.message
        lines = [f"HTTP/1.1 {status}\r\n"]
        length = request_id = None
        app_says_close = False
        # 1xx and 204 have no Content-Length (RFC 9110 8.6): one from the
        # application is not sent.
        no_length = status[0] == "1" or status[:3] == "204"
        for name, value in headers:
            lower = name.lower()
            if lower == "content-length":
                if length is not None or no_length:
                    continue  # the same length again (check_head): say it once
                length = int(value)
            elif lower == "x-openstack-request-id":
                request_id = value
            elif lower == "connection":
                app_says_close = "close" in guard.tokens(value)
                continue
            lines.append(f"{name}: {value}\r\n")
        no_body = no_length or status[:3] == "304" or message.method == "HEAD"
        if length is not None and not no_body:
            if total is not None and total != length:
                raise ValueError(f"Content-Length {length} for a body of {total} bytes")
            if len(first) > length:
                raise ValueError(
                    f"Content-Length {length} for a body of {len(first)} bytes or more"
                )
        chunked = False
        framed = True
        if length is not None or no_body:
            # The application's own Content-Length frames the body; with no
            # body, HEAD's and 304's is the one a GET would have, and none is
            # made up: a HEAD's list body may be the GET's or empty.
            pass
        elif total is not None:
            length = total
            lines.append(f"Content-Length: {length}\r\n")
        elif message.version != "1.0":
            chunked = True
            lines.append("Transfer-Encoding: chunked\r\n")
        else:
            framed = False
        keep = self._keep_alive(app_says_close, framed, failed)
        if not keep:
            lines.append("Connection: close\r\n")
        elif message.version == "1.0":  # it asked for keep-alive: say yes
            lines.append("Connection: keep-alive\r\n")
        lines.append(date)
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        self.status = status
        self.head_sent = True
        self.keep, self.chunked, self.no_body = keep, chunked, no_body
        self.length = None if no_body else length
        if request_id is not None:
            self.request_id = request_id
        return head

    def _keep_alive(self, app_says_close: bool, framed: bool, failed: bool) -> bool:
        """The one decision: does the connection stay open after this response?"""
        shared = self.shared
        return (
            self.request.keep
            and shared.limits.keep_alive
            and not app_says_close
            and framed  # an HTTP/1.0 body without a length ends with the close
            and not failed
            and not shared.stopping
            and self._rest_is_small()
        )

    def _rest_is_small(self) -> bool:
        """True when what the application left of the body can be dropped
        (DRAIN_LIMIT) to keep the connection; a chunked rest is unknown."""
        message = self.request.message
        if message.complete:
            return True
        if self.awaiting_continue:
            return False  # the client holds its body back: nothing to drop
        return message.body_left is not None and message.body_left <= DRAIN_LIMIT

    def body(self, data: bytes) -> bytes:
        """``data`` of the body, framed; never past the head's Content-Length:
        the rest is dropped (counted in :attr:`dropped`)."""
        if not data or self.no_body:
            return b""
        length = self.length
        if length is not None and self.sent + len(data) > length:
            self.dropped += self.sent + len(data) - length
            data = data[: length - self.sent]
            if not data:
                return b""
        self.sent += len(data)
        if self.chunked:
            return b"%x\r\n%s\r\n" % (len(data), data)
        return data

    def end_body(self) -> bytes:
        """The body's end: the last chunk of a chunked body."""
        return b"0\r\n\r\n" if self.chunked else b""

    @property
    def short(self) -> bool:
        """The body ended short of the head's Content-Length."""
        return self.length is not None and self.sent < self.length

    def refusal(self, error: BadRequest, status_only: bool = False) -> bytes:
        """The answer to ``error``; the connection ends after it.
        ``status_only``: as the response's status, nothing sent (a refusal
        found after the head went out)."""
        self.status = error.status
        self.head_sent = True
        if status_only:
            return b""
        body = error.reason.encode("latin-1", "replace") + b"\n"
        return (
            b"HTTP/1.1 %s\r\nConnection: close\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (error.status.encode(), len(body), body)
        )

    # --- after the response ----------------------------------------------------------

    def response_ended(self, now: float, broken: bool = False) -> After:
        """The response went out at ``now`` (``broken``: not as framed, or
        the request was refused); what the connection does next. Called again
        after each :meth:`receive` while it says DRAIN."""
        request = self.request
        if request is None or broken or not self.keep or self.closed:
            return self._end(now, linger=self._unread())
        message = request.message
        if not message.complete:
            if self.deadline is None:  # the first call: the drain's bounds
                self.deadline = now + LINGER_SECONDS
                self._dropped = 0  # what came already cost no read to drop
            else:
                self._dropped += message.body_bytes
            message.body.clear()
            message.body_bytes = 0
            if (
                message.error is not None
                or self._dropped > DRAIN_LIMIT
                or now >= self.deadline
            ):
                return self._end(now, linger=True)
            return After.DRAIN
        return self._next(now)

    def _unread(self) -> bool:
        """Bytes of the request, or of one the client pipelined after it, may
        still come: closing would reset them, and the answer with them."""
        request = self.request
        if request is None:
            return True  # a refusal: what follows it is unread
        return not request.message.complete or len(self.parser.messages) > 1

    def _next(self, now: float) -> After:
        """Kept alive: the next request's head is waited for."""
        parser = self.parser
        self.request = None
        self._dropped = 0
        self._done_at = now
        parser.pop(now)
        # The next head began in the same read: its deadline from now.
        if parser.begun:
            self.deadline = now + self.shared.limits.header_timeout
        else:
            self.deadline = None
        return After.KEEP

    def refused(self, now: float) -> After:
        """A refusal went out at ``now``: linger."""
        self.request = None
        return self._end(now, linger=True)

    def _end(self, now: float, linger: bool) -> After:
        if linger and not self.closed:
            self._dropped = 0
            self.deadline = now + LINGER_SECONDS
            return After.LINGER
        self.closed = True
        return After.CLOSE

    def drop(self, data: bytes, now: float) -> bool:
        """While lingering: ``data`` arrived at ``now`` and is dropped; False
        when the connection should close (the client's close, the drop limit,
        the deadline)."""
        self._dropped += len(data)
        if not data or self._dropped > DRAIN_LIMIT or now >= self.deadline:
            self.closed = True
            return False
        return True

    @property
    def started(self) -> float:
        """When the request being served could be served: its head whole and
        the response before it (pipelined) sent."""
        return max(self.request.message.ready_at, self._done_at)
