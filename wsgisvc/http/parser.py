"""A connection's bytes through llhttp (httptools), into requests, within limits.

One :class:`RequestParser` per connection keeps llhttp's state across
keep-alive requests, so pipelined requests are framed by the parser and never
by a guess. Bytes are fed only when the request being served needs them (its
head is incomplete, or the application reads its body), so what a connection
holds in memory is bounded by one read plus the limits below, whatever the
client sends:

- a request target longer than ``max_url`` is a 414; a header field longer
  than ``max_line``, or more than ``MAX_HEADERS`` of them, a 431;
- a line still unterminated after ``max_line`` bytes is refused at once (414
  on the request line, 431 in the headers), not buffered until it ends;
- in a body, framing bytes (a chunk-size line with its extensions, the CRLF
  after chunk data, the trailer section) may not run past ``max_line``
  without the parser getting on: a 400.
"""

from collections import deque

import httptools

from wsgisvc.http.guard import MAX_HEADERS, BadRequest, bad


class Message:
    """One request as llhttp delivers it: head first, then body pieces."""

    __slots__ = (
        "target",
        "headers",
        "method",
        "version",
        "head_done",
        "complete",
        "upgrade",
        "body",
        "body_bytes",
        "received",
    )

    def __init__(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.method = ""
        self.version = ""
        self.head_done = False
        self.complete = False
        self.upgrade = False
        self.body: deque[bytes] = deque()
        self.body_bytes = 0  # buffered, not yet read by the application
        self.received = 0  # body bytes parsed so far


class RequestParser:
    """llhttp for one connection; :meth:`feed` adds bytes, :attr:`messages` fills."""

    def __init__(self, max_line: int, max_url: int) -> None:
        self.max_line = max_line
        self.max_url = max_url
        self.messages: deque[Message] = deque()
        self._llhttp = httptools.HttpRequestParser(self)
        self._current: Message | None = None
        self._error: BadRequest | None = None
        self._moved = False  # llhttp completed a unit during the last feed
        self._stalled = 0  # bytes fed since llhttp last completed a unit
        self._head_lines = 0  # line ends seen in an incomplete head
        self._dead = False

    # --- feeding -------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raise :class:`BadRequest` when it breaks a rule."""
        if self._dead:
            return  # after an upgrade llhttp is paused: nothing more is read
        self._moved = False
        try:
            self._llhttp.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgraded()
        except httptools.HttpParserCallbackError:
            self._dead = True
            raise self._error from None
        except httptools.HttpParserError as exc:
            self._dead = True
            raise bad(str(exc) or "malformed request") from None
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
                self._dead = True
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
            self._dead = True
            if not self._head_lines:
                raise BadRequest("414 URI Too Long", "request line too long")
            raise BadRequest(
                "431 Request Header Fields Too Large", "header line too long"
            )

    def _upgraded(self) -> None:
        """llhttp paused on ``Upgrade``/``CONNECT``: serve it as a last request."""
        self._dead = True
        current = self._current
        if current is not None:
            current.upgrade = True
            current.complete = True

    @property
    def head_ready(self) -> bool:
        """True when the oldest unserved request has its whole head."""
        return bool(self.messages) and self.messages[0].head_done

    @property
    def begun(self) -> bool:
        """True once any byte of the next request arrived."""
        return bool(self.messages)

    # --- llhttp callbacks ----------------------------------------------------

    def _fail(self, exc: BadRequest) -> None:
        self._error = exc
        raise exc

    def on_message_begin(self) -> None:
        self._current = message = Message()
        self._head_lines = 0
        self.messages.append(message)

    def on_url(self, url: bytes) -> None:
        message = self._current
        message.target += url
        if len(message.target) > self.max_url:
            self._fail(BadRequest("414 URI Too Long", "request target too long"))

    def on_header(self, name: bytes, value: bytes) -> None:
        message = self._current
        if message.head_done:
            return  # a trailer field: checked by llhttp, not passed on (WSGI)
        self._moved = True
        if len(name) + len(value) > self.max_line:
            self._fail(
                BadRequest("431 Request Header Fields Too Large", "header too long")
            )
        headers = message.headers
        headers.append((name, value))
        if len(headers) > MAX_HEADERS:
            self._fail(
                BadRequest(
                    "431 Request Header Fields Too Large", "too many header lines"
                )
            )

    def on_headers_complete(self) -> None:
        message = self._current
        llhttp = self._llhttp
        message.method = llhttp.get_method().decode("ascii")
        message.version = version = llhttp.get_http_version()
        message.head_done = True
        self._moved = True
        if version[0] != "1":
            if version[0] == "0":
                self._fail(bad("malformed request line"))
            self._fail(
                BadRequest("505 HTTP Version Not Supported", "only HTTP/1.x is served")
            )

    def on_body(self, body: bytes) -> None:
        message = self._current
        message.body.append(body)
        message.body_bytes += len(body)
        message.received += len(body)
        self._moved = True

    def on_chunk_header(self) -> None:
        self._moved = True

    def on_message_complete(self) -> None:
        self._current.complete = True
        self._moved = True
