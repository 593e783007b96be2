"""A connection's bytes through llhttp (httptools), into requests, within limits.

One :class:`RequestParser` per connection keeps llhttp's state across
keep-alive requests, so pipelined requests are framed by the parser and never
by a guess. Bytes are fed only when the request being served needs them (its
head is incomplete, or the application reads its body), and llhttp is fed one
*segment* at a time: up to the end of a head (``CRLF CRLF``, which also ends a
chunked body) or of a ``Content-Length`` body. So every request starts at a
segment's first byte, where its request line is checked, and at most
``PIPELINE_DEPTH`` requests are parsed ahead of the one served; the rest of
the read waits, unparsed. What a connection holds is bounded by one read, that
many parsed heads, and the limits below, whatever the client sends:

- a request target longer than ``max_url`` is a 414; a header field longer
  than ``max_line``, or more than ``MAX_HEADERS`` of them, a 431;
- a line still unterminated after ``max_line`` bytes is refused at once (414
  on the request line, 431 in the headers), not buffered until it ends;
- in a body, framing bytes (a chunk-size line with its extensions, the CRLF
  after chunk data, the trailer section) may not run past ``max_line``
  without the parser getting on: a 400;
- a request line is ``method SP target SP version`` with single spaces (RFC
  9112 section 3; llhttp accepts runs of them): a 400.

:meth:`RequestParser.feed` never raises. An error ends the parse: it is kept in
:attr:`RequestParser.error`, and on the request it belongs to when that
request's head was whole (``Message.error``); a request whose head was not
whole is dropped. Requests parsed whole before the error are still served, so
bytes after ``Connection: close`` (llhttp's "data after close") only end the
connection after the request they follow is answered (RFC 9112 section 9.6).

``Upgrade`` is not served (there is no ``101``): llhttp pauses at the end of an
upgrade request's head; its body, if it has one, is framed by a fresh llhttp
fed a head that frames the same body, and the connection goes on as HTTP/1.1.
``CONNECT`` is left to the core to refuse.
"""

from __future__ import annotations

import time
from collections import deque

import httptools

from wsgisvc.http.guard import MAX_HEADERS, BadRequest, bad

# Requests parsed ahead of the one being served, at most (pipelining).
PIPELINE_DEPTH = 8
_HEAD_END = b"\r\n\r\n"


class Message:
    """One request as llhttp delivers it: head first, then body pieces."""

    __slots__ = (
        "target",
        "headers",
        "method",
        "version",
        "head_done",
        "ready_at",
        "complete",
        "body",
        "body_bytes",
        "received",
        "body_left",
        "error",
    )

    def __init__(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.method = ""
        self.version = ""
        self.head_done = False
        self.ready_at = 0.0  # monotonic time the head became whole
        self.complete = False
        self.body: deque[bytes] = deque()
        self.body_bytes = 0  # buffered, not yet read by the application
        self.received = 0  # body bytes parsed so far
        self.body_left: int | None = None  # of a Content-Length body
        self.error: BadRequest | None = None  # its body broke the framing


class RequestParser:
    """llhttp for one connection; :meth:`feed` adds bytes, :attr:`messages` fills."""

    def __init__(self, max_line: int, max_url: int) -> None:
        self.max_line = max_line
        self.max_url = max_url
        self.messages: deque[Message] = deque()
        self.error: BadRequest | None = None
        self._llhttp = httptools.HttpRequestParser(self)
        self._current: Message | None = None
        self._moved = False  # llhttp completed a unit during the last feed
        self._stalled = 0  # bytes fed since llhttp last completed a unit
        self._head_lines = 0  # line ends seen in an incomplete head
        self._line = b""  # an unterminated request line so far
        self._tail = b""  # the last bytes fed: a head end may straddle two reads
        self._pending = b""  # read, not yet parsed: PIPELINE_DEPTH is reached
        self._reframing = False  # llhttp is fed a synthetic head (upgrade)
        self._dead = False

    # --- state -----------------------------------------------------------------

    @property
    def head_ready(self) -> bool:
        """True when the oldest unserved request has its whole head."""
        return bool(self.messages) and self.messages[0].head_done

    @property
    def begun(self) -> bool:
        """True once any byte of the next request arrived."""
        return bool(self.messages) or bool(self._line)

    @property
    def ended(self) -> bool:
        """True when no request can follow the parsed ones (error or CONNECT)."""
        return self._dead

    def pop(self) -> None:
        """The oldest request was served: forget it, parse what waited."""
        self.messages.popleft()
        if self._pending:
            data, self._pending = self._pending, b""
            self._feed_from(data, 0)

    # --- feeding -------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parse ``data``, segment by segment; an error lands in :attr:`error`."""
        if self._dead:
            return
        if self._pending:  # the scheduler reads no more while requests wait
            self._pending += data
            return
        self._feed_from(data, 0)

    def _feed_from(self, data: bytes, pos: int) -> None:
        size = len(data)
        try:
            while pos < size and not self._dead:
                current = self._current
                between = current is None or current.complete
                if between and len(self.messages) >= PIPELINE_DEPTH:
                    self._pending = data[pos:]
                    return
                end = self._segment_end(data, pos, current, between)
                if between or self._line:
                    self._check_request_line(data, pos, end)
                segment = data if pos == 0 and end == size else data[pos:end]
                self._execute(segment)
                pos = end
        except BadRequest as exc:
            self._failed(exc)
        self._tail = data[-3:]

    def _segment_end(
        self, data: bytes, pos: int, current: Message | None, between: bool
    ) -> int:
        """Where the unit that starts at ``pos`` ends: a head (or chunked
        body, or trailer section) at ``CRLF CRLF``, a sized body at its length."""
        if not between and current.head_done and current.body_left is not None:
            return min(len(data), pos + current.body_left)
        if pos == 0 and self._tail and not between:
            joined = self._tail + data[:3]
            at = joined.find(_HEAD_END)
            if at >= 0:
                return at + 4 - len(self._tail)
        at = data.find(_HEAD_END, pos)
        return len(data) if at < 0 else at + 4

    def _check_request_line(self, data: bytes, pos: int, end: int) -> None:
        """Refuse a request line that is not single-space separated."""
        line = self._line + data[pos:end] if self._line else data[pos:end]
        start = 0
        while line.startswith(b"\r\n", start):  # empty lines before a request
            start += 2
        stop = line.find(b"\r\n", start)
        if stop < 0:
            self._line = line[: self.max_line + 2]  # the open-line check refuses
            return
        self._line = b""
        if line.count(b" ", start, stop) != 2 or b"  " in line[start:stop]:
            raise bad("request line is not method SP target SP version")

    def _execute(self, segment: bytes) -> None:
        self._moved = False
        try:
            self._llhttp_feed(segment)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(segment[exc.args[0] :])
            return
        self._check_progress(segment)

    def _llhttp_feed(self, data: bytes) -> None:
        """Feed llhttp; its errors (and our callbacks') become a BadRequest."""
        try:
            self._llhttp.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            raise (
                exc.__context__
                if isinstance(exc.__context__, BadRequest)
                else bad("malformed request")
            ) from None
        except httptools.HttpParserError as exc:
            raise bad(str(exc) or "malformed request") from None

    def _check_progress(self, data: bytes) -> None:
        current = self._current
        if current is None or current.complete:
            self._stalled = 0
            return
        if self._moved:
            self._stalled = 0
            if current.head_done:
                return
        if current.head_done:
            self._stalled += len(data)
            if self._stalled > self.max_line:
                raise bad("chunk-size line or trailer section too long")
            return
        self._check_open_line(data)

    def _check_open_line(self, data: bytes) -> None:
        """Refuse a head line that is still open after ``max_line`` bytes."""
        newline = data.rfind(b"\n")
        self._head_lines += data.count(b"\n")
        if newline < 0:
            self._stalled += len(data)
        else:
            self._stalled = len(data) - newline - 1
        if self._stalled > self.max_line:
            if not self._head_lines:
                raise BadRequest("414 URI Too Long", "request line too long")
            raise BadRequest(
                "431 Request Header Fields Too Large", "header line too long"
            )

    def _failed(self, exc: BadRequest) -> None:
        """End the parse; the error belongs to the request being parsed."""
        self._dead = True
        self.error = exc
        self._pending = b""
        self._line = b""
        current = self._current
        if current is not None and not current.complete:
            if current.head_done:
                current.error = exc
            else:
                self.messages.pop()  # no head: nothing of it is served

    def _upgraded(self, rest: bytes) -> None:
        """llhttp paused after an upgrade request's head (its body unread)."""
        current = self._current
        if current.method == "CONNECT":
            self._dead = True  # refused by the core; nothing after it is read
            current.complete = True
            return
        self._llhttp = httptools.HttpRequestParser(self)
        framing = b""
        for name, value in current.headers:
            lower = name.lower()
            if lower in (b"content-length", b"transfer-encoding"):
                framing += name + b": " + value + b"\r\n"
        if framing:
            self._reframing = True
            try:
                self._llhttp_feed(b"PUT / HTTP/1.1\r\n" + framing + b"\r\n")
            finally:
                self._reframing = False
        else:
            current.complete = True
        self._tail = b""
        if rest:
            self._feed_from(rest, 0)

    # --- llhttp callbacks ----------------------------------------------------

    def on_message_begin(self) -> None:
        if self._reframing:
            return
        self._current = message = Message()
        self._head_lines = 0
        self.messages.append(message)

    def on_url(self, url: bytes) -> None:
        if self._reframing:
            return
        message = self._current
        message.target += url
        if len(message.target) > self.max_url:
            raise BadRequest("414 URI Too Long", "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        message = self._current
        if len(name) + len(value) > self.max_line:
            if message.head_done:
                raise bad("trailer field too long")
            raise BadRequest("431 Request Header Fields Too Large", "header too long")
        if message.head_done:
            return  # a trailer field, or the reframing head: not passed on (WSGI)
        self._moved = True
        headers = message.headers
        headers.append((name, value))
        if len(headers) > MAX_HEADERS:
            raise BadRequest(
                "431 Request Header Fields Too Large", "too many header lines"
            )

    def on_headers_complete(self) -> None:
        self._moved = True
        if self._reframing:
            return
        message = self._current
        llhttp = self._llhttp
        message.method = llhttp.get_method().decode("ascii")
        message.version = version = llhttp.get_http_version()
        message.head_done = True
        message.ready_at = time.monotonic()
        if version[0] != "1":
            if version[0] == "0":
                raise bad("malformed request line")
            raise BadRequest(
                "505 HTTP Version Not Supported", "only HTTP/1.x is served"
            )
        for name, value in message.headers:
            if len(name) == 14 and name.lower() == b"content-length":
                message.body_left = int(value)

    def on_body(self, body: bytes) -> None:
        message = self._current
        message.body.append(body)
        size = len(body)
        message.body_bytes += size
        message.received += size
        if message.body_left is not None:
            message.body_left -= size
        self._moved = True

    def on_chunk_header(self) -> None:
        self._moved = True

    def on_message_complete(self) -> None:
        self._moved = True
        if self._llhttp.should_upgrade() and not self._reframing:
            return  # the upgrade pause follows: _upgraded() frames the body
        self._current.complete = True
