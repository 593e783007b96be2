"""A connection's bytes through llhttp (httptools), into requests, within limits.

One :class:`RequestParser` per connection keeps llhttp's state across
keep-alive requests, so pipelined requests are framed by the parser and never
by a guess. Bytes are fed only when the request being served needs them (its
head is incomplete, or the application reads its body), and llhttp is fed one
*segment* at a time: up to the end of a head (``CRLF CRLF``), of a
``Content-Length`` body, or of a chunked body's trailer section (``CRLF
CRLF`` too). A chunked body's chunk-size lines are read here as well, so that
its chunk data is skipped by its size and never searched: a ``CRLF CRLF``
inside the data cuts nothing, and a body is fed in pieces as large as the
reads, whatever its content. So every request starts at a segment's first
byte, where its request line is checked, and at most ``PIPELINE_DEPTH``
requests are parsed ahead of the one served; the rest of the read waits,
unparsed. A request that llhttp begins inside a body's segment (its framing
read otherwise than here) ends the parse with a 400 before any of its bytes
is taken. What a connection holds is bounded by one read, that
many parsed heads, and the limits below, whatever the client sends:

- a head line is measured as sent, without its CRLF: a header line may be
  ``max_line`` bytes long (else a 431), the request line
  ``max(max_line, max_url + REQUEST_LINE_ROOM)`` and its target ``max_url``
  (else a 414); more than ``MAX_HEADERS`` header fields are a 431;
- each is judged the same however the bytes arrive: a line is refused at its
  first byte too many (its CR aside), without waiting for its end, once llhttp
  has parsed the bytes before that byte, so an error llhttp finds earlier is
  the answer either way; a line that ends in a later read is measured whole.
  A header name still open at the end of a read is held back from llhttp
  until its colon comes (see ``_check_header_lines``). A head no longer than
  ``max_line``, its request line no longer than ``max_url``, costs length
  tests, no scan;
- in a body, a trailer field's name and value may be ``max_line`` bytes
  together (else a 400), and framing bytes (a chunk-size line with its
  extensions, the CRLF after chunk data, the trailer section) may not run
  past ``FRAMING_LIMIT`` without llhttp getting on (a 400): more than one
  feed ever carries, so that it is judged the same however the bytes arrive;
- a request line is ``method SP target SP version`` with single spaces (RFC
  9112 section 3; llhttp accepts runs of them): a 400;
- a chunk-size line is what llhttp takes (hex digits, extensions after a
  ``;``, CRLF) with at most 16 hex digits after leading zeros (llhttp's own
  bound): a 400 otherwise.

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

import re
from collections import deque
from typing import NoReturn

import httptools

from wsgisvc.http.guard import MAX_HEADERS, BadRequest, bad
from wsgisvc.http.limits import RECV_SIZE

# Requests parsed ahead of the one being served, at most (pipelining).
PIPELINE_DEPTH = 8
# Body framing bytes fed without llhttp completing a unit, at most. Larger
# than any one feed (a read of RECV_SIZE, or two while pipelined requests
# wait), so that the count can only run past it across feeds, as it does
# whether a client sends the bytes at once or one by one.
FRAMING_LIMIT = 4 * RECV_SIZE
# What a request line holds besides its target: the longest method llhttp
# serves, two spaces and the version.
REQUEST_LINE_ROOM = len(b"UNSUBSCRIBE  HTTP/1.1")
_HEAD_END = b"\r\n\r\n"
# Chunk extensions: llhttp checks them; here they only run to the line's CRLF.
_EXTENSIONS = rb"(?:;[^\r\n]*+)?+"
# A chunk-size line, whole: its size (llhttp's 64 bits), extensions, CRLF.
_CHUNK_LINE = re.compile(rb"0*([0-9A-Fa-f]{1,16})" + _EXTENSIONS + rb"\r\n")
# Of a chunk-size line that ends in a later read, what is kept (_line_so_far):
# a leading zero, 16 digits, one byte more, and its last byte.
_LINE_KEPT = 19


def _small_chunks() -> re.Pattern[bytes]:
    """Chunks of 1 to 15 bytes, whole, any number of them: skipped by the
    regular expression engine, not one by one in Python, since a body sent a
    few bytes at a time has a chunk-size line every few bytes."""
    sizes = []
    for size in range(1, 16):
        digit = b"%x" % size
        if size > 9:
            digit = b"[%s%s]" % (digit, digit.upper())
        sizes.append(b"%s%s\r\n.{%d}\r\n" % (digit, _EXTENSIONS, size))
    return re.compile(b"(?:0*+(?:%s))*+" % b"|".join(sizes), re.DOTALL)


_SMALL_CHUNKS = _small_chunks()
_EMPTY_LINE = (b"\r", b"\n")  # llhttp skips these bytes before a request
# A header name so far (RFC 9110 token characters, exactly what llhttp takes).
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


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
        self.ready_at = 0.0  # when the head became whole (the feed's ``now``)
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
        # Bytes a line may have before its LF: the line and its CR.
        self._header_room = max_line + 1
        self._request_room = max(max_line, max_url + REQUEST_LINE_ROOM) + 1
        self.messages: deque[Message] = deque()
        self.error: BadRequest | None = None
        self._current: Message | None = None
        self._moved = False  # llhttp completed a body unit during the last feed
        self._stalled = 0  # body bytes fed since llhttp last completed a unit
        self._line = b""  # an unterminated request line so far
        self._open = 0  # bytes of an unterminated header line so far
        self._held = b""  # that line, a name so far, not yet fed to llhttp
        self._tail = b""  # the last 3 bytes fed: a head end may straddle reads
        self._pending = b""  # read, not yet parsed: PIPELINE_DEPTH is reached
        self._reframing = False  # llhttp is fed a synthetic head (upgrade)
        self._in_body = False  # llhttp is fed a body's segment
        # A chunked body being fed: bytes of chunk data and its CRLF before the
        # next chunk-size line (None: in the trailer section), and the part
        # of a chunk-size line that began in an earlier read (_line_so_far).
        self._chunk_left: int | None = 0
        self._chunk_line = b""
        # llhttp's body pieces of one feed, taken when it returns
        # (_body_parsed): the callback is list.append, no Python frame per
        # piece, that is per chunk.
        self._pieces: list[bytes] = []
        self.on_body = self._pieces.append
        self._dead = False
        self._now = 0.0  # the time given to the feed under way
        self._llhttp = httptools.HttpRequestParser(self)  # after on_body

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

    def pop(self, now: float) -> None:
        """The oldest request was served (at ``now``): forget it, parse what
        waited."""
        self.messages.popleft()
        if self._pending:
            self._now = now
            data, self._pending = self._pending, b""
            self._feed_from(data, 0)

    # --- feeding -------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> None:
        """Parse ``data``, received at ``now`` (the time a head that becomes
        whole is stamped with), segment by segment; an error lands in
        :attr:`error`."""
        self._now = now
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
                if between or not current.head_done:
                    end = self._head_end(data, pos, between)
                    self._feed_head(data, pos, end, between or bool(self._line))
                else:
                    self._in_body = True
                    end = self._body_end(data, pos, current)
                    segment = data if pos == 0 and end == size else data[pos:end]
                    self._execute(segment)
                    self._in_body = False
                    self._check_progress(segment)
                pos = end
        except BadRequest as exc:
            self._failed(exc)
        self._tail = (self._tail + data[-3:])[-3:]  # reads may be shorter

    def _head_end(self, data: bytes, pos: int, between: bool) -> int:
        """Where the head (or trailer section) that goes on at ``pos`` ends: at
        ``CRLF CRLF``, which may have begun in the last read."""
        if pos == 0 and self._tail and not between:
            joined = self._tail + data[:3]
            at = joined.find(_HEAD_END)
            if at >= 0:
                return at + 4 - len(self._tail)
        at = data.find(_HEAD_END, pos)
        return len(data) if at < 0 else at + 4

    def _body_end(self, data: bytes, pos: int, message: Message) -> int:
        """Where the body's segment that starts at ``pos`` ends: at a sized
        body's length, at the end of a chunked body's trailer section, else
        at the end of ``data``."""
        if message.body_left is not None:
            return min(len(data), pos + message.body_left)
        if self._chunk_left is None:
            return self._head_end(data, pos, False)
        size = len(data)
        at = pos + self._chunk_left
        while at < size:
            if not self._chunk_line:
                at = _SMALL_CHUNKS.match(data, at).end()
                if at == size:
                    break
            sized = self._chunk_size(data, pos, at)
            if sized is None:  # the line goes on in the next read
                self._chunk_left = 0
                return size
            chunk, at = sized
            if not chunk:  # the last chunk: the trailer section follows
                self._chunk_left = None
                if data.startswith(b"\r\n", at):
                    return at + 2
                end = data.find(_HEAD_END, at)
                return size if end < 0 else end + 4
            at += chunk + 2
        self._chunk_left = at - size
        return size

    def _chunk_size(self, data: bytes, pos: int, at: int) -> tuple[int, int] | None:
        """The size of the chunk whose size line starts at ``at`` (or began in
        an earlier read) and where the line ends; None if it ends later."""
        newline = data.find(b"\n", at)
        if newline < 0:
            self._chunk_line = _line_so_far(self._chunk_line + data[at:])
            return None
        end = newline + 1
        if self._chunk_line:
            line, self._chunk_line = self._chunk_line + data[at:end], b""
            match = _CHUNK_LINE.fullmatch(line)
        else:
            match = _CHUNK_LINE.fullmatch(data, at, end)
        if match is None:
            self._refuse_at(data, pos, end, bad("malformed chunk-size line"))
        return int(match[1], 16), end

    def _feed_head(self, data: bytes, pos: int, end: int, request_line: bool) -> None:
        """Feed llhttp head bytes, refusing a line at its first byte too many."""
        if self._held:  # the whole open line: measured and fed again with the rest
            data = self._held + data[pos:end]
            pos, end = 0, len(data)
            self._held = b""
            self._open = 0
        lines = self._check_request_line(data, pos, end) if request_line else pos
        if lines < end:
            if data[end - 1] != 10 or self._open + end - lines > self._header_room:
                end = self._check_header_lines(data, pos, lines, end)
            else:  # every line here ended, none can be too long: no scan
                self._open = 0
        if end > pos:
            self._execute(data if pos == 0 and end == len(data) else data[pos:end])

    def _check_request_line(self, data: bytes, pos: int, end: int) -> int:
        """Refuse a request line too long, with a target too long, or not
        single-space separated; where the header lines start (``end`` while
        the request line is open)."""
        old = self._line
        if old:  # begun in an earlier read: measured whole
            line, first, shift = old + data[pos:end], 0, pos - len(old)
        else:
            line, first, shift = data, pos, 0
        start, limit = first, end - shift  # in line
        while line.startswith(_EMPTY_LINE, start, limit):
            start += 1
        stop = line.find(b"\n", start, limit)
        size = (limit if stop < 0 else stop) - start  # bytes before its LF
        if size > self.max_url:  # shorter, it breaks no limit: no scan
            line_end = start + size
            cut = start + self._request_room  # its first byte too many
            space = line.find(b" ", start, line_end)
            over = space + 1 + self.max_url  # its target's first byte too many
            if (
                space >= 0
                and over < min(cut, line_end)
                and line.find(b" ", space + 1, over + 1) < 0
            ):
                cut, reason = over, "request target too long"
            else:
                reason = "request line too long"
            if cut < line_end:
                exc = BadRequest("414 URI Too Long", reason)
                self._refuse_at(data, pos, cut + shift, exc)
        if stop < 0:  # one skipped byte is kept: the request has begun
            self._line = line[max(start - 1, first) : limit]
            return end
        self._line = b""
        if line.count(b" ", start, stop) != 2 or line.find(b"  ", start, stop) >= 0:
            exc = bad("request line is not method SP target SP version")
            self._refuse_at(data, pos, stop + shift, exc)
        return stop + 1 + shift

    def _check_header_lines(self, data: bytes, pos: int, start: int, end: int) -> int:
        """Refuse a header line at its first byte too many; keep the length of
        the line left open. Return where llhttp's feed ends: a header name
        begun and still open is held back until its colon comes, because
        httptools hands over llhttp's open spans at the end of every feed, so
        it would pass the field before on (and count it against
        ``MAX_HEADERS``) at the name's first byte in one read, at its colon
        in another."""
        room = self._header_room - self._open
        while start + room < end:  # a line here may be too long
            newline = data.find(b"\n", start, start + room + 1)
            if newline < 0:
                exc = BadRequest(
                    "431 Request Header Fields Too Large", "header line too long"
                )
                self._refuse_at(data, pos, start + room, exc)
            start, room = newline + 1, self._header_room
            self._open = 0
        last = data.rfind(b"\n", start, end)
        if last >= 0:
            start, self._open = last + 1, 0
        if not self._open and start < end and _NAME.fullmatch(data, start, end):
            self._held = data[start:end]
            self._open = end - start
            return start
        self._open += end - start
        return end

    def _refuse_at(self, data: bytes, pos: int, cut: int, exc: BadRequest) -> NoReturn:
        """Parse the bytes before ``cut``, the byte that breaks a limit, then
        refuse: an error llhttp finds before it is the answer, as it is when
        the bytes come one by one."""
        if cut > pos:
            self._execute(data[pos:cut])
        raise exc

    def _execute(self, segment: bytes) -> None:
        self._moved = False
        try:
            self._llhttp_feed(segment)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(segment[exc.args[0] :])
        finally:
            if self._pieces:
                self._body_parsed()

    def _body_parsed(self) -> None:
        """The body pieces llhttp gave in one feed, onto the body: as they
        are when they are few (a read across a chunk's end), else joined, so
        that reading them costs no Python loop per chunk."""
        pieces = self._pieces
        message = self._current
        if len(pieces) > 2:
            pieces[:] = [b"".join(pieces)]
        message.body.extend(pieces)
        size = sum(map(len, pieces))
        pieces.clear()
        message.body_bytes += size
        message.received += size
        if message.body_left is not None:
            message.body_left -= size
        self._moved = True

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
        """Refuse body framing that runs past ``FRAMING_LIMIT`` bytes without
        llhttp getting on (a chunk-size line, the trailer section)."""
        if self._current.complete or self._moved:
            self._stalled = 0
            return
        self._stalled += len(data)
        if self._stalled > FRAMING_LIMIT:
            raise bad("chunk-size line or trailer section too long")

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
        if self._in_body:  # the body ended before its segment: framed two ways
            raise bad("request inside a body's framing")
        self._current = message = Message()
        self.messages.append(message)

    def on_url(self, url: bytes) -> None:
        if not self._reframing:  # its length is checked before llhttp sees it
            self._current.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        message = self._current
        if message.head_done:  # a trailer field, or the reframing head
            if len(name) + len(value) > self.max_line:
                raise bad("trailer field too long")
            return  # not passed on (WSGI)
        headers = message.headers
        headers.append((name, value))
        if len(headers) > MAX_HEADERS:
            raise BadRequest(
                "431 Request Header Fields Too Large", "too many header lines"
            )

    def on_headers_complete(self) -> None:
        if self._reframing:
            return
        message = self._current
        llhttp = self._llhttp
        message.method = llhttp.get_method().decode("ascii")
        message.version = version = llhttp.get_http_version()
        message.head_done = True
        message.ready_at = self._now
        self._chunk_left, self._chunk_line = 0, b""  # a chunked body's start
        if version[0] != "1":
            if version[0] == "0":
                raise bad("malformed request line")
            raise BadRequest(
                "505 HTTP Version Not Supported", "only HTTP/1.x is served"
            )
        for name, value in message.headers:
            if len(name) == 14 and name.lower() == b"content-length":
                message.body_left = int(value)

    def on_message_complete(self) -> None:
        self._moved = True
        if self._llhttp.should_upgrade() and not self._reframing:
            return  # the upgrade pause follows: _upgraded() frames the body
        self._current.complete = True


def _line_so_far(line: bytes) -> bytes:
    """What decides a chunk-size line that ends in a later read: its digits,
    with one of their leading zeros, and its last byte (a CR before the LF to
    come). The bytes between are llhttp's to check; so a line trickled in a
    byte at a time costs no more than one sent whole."""
    digits = line.lstrip(b"0")
    if len(digits) < len(line):
        digits = b"0" + digits
    if len(digits) <= _LINE_KEPT:
        return digits
    return digits[: _LINE_KEPT - 1] + digits[-1:]
