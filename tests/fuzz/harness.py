"""One fuzz input through the HTTP core's request path, and the properties it
must keep.

The bytes go into a :class:`wsgisvc.http.protocol.Protocol` (parser, guard,
framing both ways, keep-alive) in pieces, as a runtime would give them, with
no socket: requests are served by the WSGI adapter
(:class:`wsgisvc.http.core.Connection`) over a :class:`FakeTransport`,
serving an application that reads the whole body. :func:`check`
serves the same bytes three ways (in one piece, split where the input says,
split at every byte) and fails (:class:`Finding`) when

- an exception other than the ones the runtimes expect (``OSError``)
  escapes the protocol or the adapter, or the body reader raises one the
  core does not frame;
- the three ways differ in what the application saw (method, target,
  version, headers, body, in order) or in the statuses answered: a request
  framed two ways;
- the bytes written back are not a well-formed sequence of HTTP/1.1
  responses, one per request served, a refusal only last.

A hang is bounded by the caller (libFuzzer's ``-timeout``; the tests' pytest
timeout). The input's first :data:`CONTROL` bytes choose the split points and
how the application reads; the rest is what the client sends.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass, field

from wsgisvc.http.body import ClientGone
from wsgisvc.http.core import Connection, Core
from wsgisvc.http.guard import BadRequest
from wsgisvc.http.limits import RECV_SIZE, Limits
from wsgisvc.http.protocol import After

CONTROL = 5  # read style (1 byte), split seed (4 bytes)
MAX_LINE = 256  # small, so the fuzzer reaches every limit
READ_STYLES = ("read", "read7", "readline", "iterate")


class Finding(AssertionError):
    """An input that breaks a property of the request path."""


class Known(Exception):
    """An input that hits a defect already reported; see :data:`KNOWN`."""


# Defects found and reported, each with an xfail(strict=True) regression test
# that names it: an input that shows one is skipped, so a run looks for new
# ones. Remove an entry when its fix lands (its test then passes).
KNOWN: dict[bytes, str] = {}


def _known(text: bytes) -> str | None:
    for signature, defect in KNOWN.items():
        if signature in text:
            return defect
    return None


class FakeTransport:
    """The client's side of one connection: bytes handed out in ``pieces``
    (to the runtime loop of :func:`serve` and to ``wsgi.input`` alike), and
    what the adapter sent."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = list(reversed(pieces))
        self.sent = bytearray()

    def recv(self, size: int, timeout: float | None = None) -> bytes:
        if not self._pieces:
            return b""
        piece = self._pieces.pop()
        if len(piece) > size:
            self._pieces.append(piece[size:])
            piece = piece[:size]
        return piece

    def send(self, data: bytes, timeout: float | None = None) -> None:
        self.sent += data


@dataclass
class Outcome:
    """What one way of serving the bytes gave."""

    seen: list[tuple] = field(default_factory=list)  # requests read whole
    calls: list[str] = field(default_factory=list)  # each app call's method
    cut: bool = False  # the bytes ended inside a body (ClientGone)
    sent: bytes = b""


class _App:
    """Reads the whole body in one of :data:`READ_STYLES`, records the request."""

    def __init__(self, style: str, outcome: Outcome) -> None:
        self.style = style
        self.outcome = outcome

    def _body(self, stream) -> bytes:
        if self.style == "read":
            return stream.read()
        if self.style == "read7":
            return b"".join(iter(lambda: stream.read(7), b""))
        if self.style == "readline":
            return b"".join(iter(stream.readline, b""))
        return b"".join(stream)

    def __call__(self, environ, start_response):
        head = (
            environ["REQUEST_METHOD"],
            environ.get("RAW_PATH_INFO"),
            environ.get("QUERY_STRING"),
            environ["SERVER_PROTOCOL"],
            tuple(sorted((k, v) for k, v in environ.items() if k.isupper())),
        )
        self.outcome.calls.append(head[0])
        try:
            body = self._body(environ["wsgi.input"])
        except BadRequest:
            raise  # the core answers 400: when it is seen depends on the reads
        except ClientGone:
            self.outcome.cut = True
            raise
        except Exception as exc:
            raise Finding(f"wsgi.input raised {exc!r}") from exc
        self.outcome.seen.append((*head, body))
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]


class _Server:
    name = "fuzz"


def serve(pieces: list[bytes], style: str) -> Outcome:
    """Serve what ``pieces`` carry on one connection, as a scheduler would."""
    outcome = Outcome()
    limits = Limits(
        max_line=MAX_LINE,
        max_url=MAX_LINE,
        header_timeout=60.0,
        keepalive_timeout=60.0,
        socket_timeout=None,
        keep_alive=True,
    )
    core = Core(
        _App(style, outcome),
        _Server(),
        limits,
        log_format="%(status_code)s",
        debug=False,
        url_scheme="http",
        multithread=False,
    )
    transport = FakeTransport(pieces)
    conn = Connection(core, transport, ("127.0.0.1", 40000), ("127.0.0.1", 8080), 0.0)
    protocol = conn.protocol
    try:
        while True:  # a runtime's loop, on a clock that stands still
            while not protocol.ready and not protocol.closed:
                protocol.receive(transport.recv(RECV_SIZE), 0.0)
            if not protocol.ready or conn.serve() is not After.KEEP:
                break
    except OSError:
        pass  # the runtimes end the connection on these (green.py, threaded.py)
    except Finding:
        raise
    except Exception as exc:
        known = _known(repr(exc).encode())
        if known:
            raise Known(known) from exc
        raise Finding(f"the core raised {exc!r}") from exc
    outcome.sent = bytes(transport.sent)
    return outcome


_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [\x20-\x7e]*")
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+): ?([\x20-\x7e\x80-\xff\t]*)")


def responses(sent: bytes, methods: list[str]) -> list[tuple[str, dict]]:
    """Split ``sent`` into well-formed responses (status, lower-case fields);
    ``methods`` are the requests' methods in order (a HEAD answer has no
    body). Raise :class:`Finding` on anything malformed."""
    out, rest, served = [], sent, 0
    while rest:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        if not sep:
            raise Finding(f"unterminated response head {head[:200]!r}")
        status_line, *lines = head.split(b"\r\n")
        match = _STATUS_LINE.fullmatch(status_line)
        if not match:
            raise Finding(f"malformed status line {status_line!r}")
        fields: dict[bytes, bytes] = {}
        for line in lines:
            parsed = _FIELD.fullmatch(line)
            if not parsed:
                raise Finding(f"malformed response field {line!r}")
            name = parsed[1].lower()
            if name in fields:
                raise Finding(f"response field {name!r} twice")
            fields[name] = parsed[2]
        status = match[1].decode()
        if status[0] == "1":
            continue  # 100 Continue: an interim answer
        method = methods[served] if served < len(methods) else ""
        served += 1
        closing = b"close" in fields.get(b"connection", b"").lower()
        if method == "HEAD" and status[0] != "4" or status in ("204", "304"):
            pass  # no body; a refusal (4xx) always carries its reason
        elif b"content-length" in fields:
            length = int(fields[b"content-length"])
            if len(rest) < length:
                raise Finding(f"response body shorter than {length}: {rest!r}")
            rest = rest[length:]
        elif fields.get(b"transfer-encoding") == b"chunked":
            rest = _dechunk(rest)
        elif not closing:
            raise Finding(f"response {status} with no framing and no close")
        else:
            rest = b""
        out.append((status, fields))
        if closing and rest:
            raise Finding(f"bytes after a Connection: close answer: {rest[:200]!r}")
    return out


def _dechunk(data: bytes) -> bytes:
    """What follows a well-formed chunked body in ``data``."""
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep or not re.fullmatch(rb"[0-9a-f]+", size_line):
            raise Finding(f"malformed response chunk size {size_line!r}")
        size = int(size_line, 16)
        if data[size : size + 2] != b"\r\n":
            raise Finding("response chunk not followed by CRLF")
        data = data[size + 2 :]
        if size == 0:
            return data


def split_points(data: bytes, seed: int) -> list[bytes]:
    """``data`` cut at a few points chosen by ``seed``."""
    if not data:
        return []
    rng = random.Random(seed)
    cuts = sorted({rng.randrange(len(data) + 1) for _ in range(rng.randrange(1, 8))})
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if a < b]


def check(data: bytes) -> None:
    """The fuzz target: raise :class:`Finding` when ``data`` breaks a property."""
    if len(data) < CONTROL:
        return
    style = READ_STYLES[data[0] % len(READ_STYLES)]
    seed = int.from_bytes(data[1:CONTROL], "big")
    wire = data[CONTROL:]
    ways = {
        "whole": serve([wire] if wire else [], style),
        "split": serve(split_points(wire, seed), style),
        "bytewise": serve([wire[i : i + 1] for i in range(len(wire))], style),
    }
    statuses = {}
    for way, outcome in ways.items():
        known = _known(outcome.sent)
        if known:
            raise Known(known)
        answered = responses(outcome.sent, outcome.calls)
        # a request whose body the bytes cut is not answered: its client left
        if len(answered) < len(outcome.calls) - outcome.cut:
            raise Finding(f"{way}: {len(outcome.calls)} calls, {len(answered)} answers")
        if len(answered) > len(outcome.calls) + 1:
            raise Finding(f"{way}: more answers than requests (and one refusal)")
        statuses[way] = [status for status, _ in answered]
    whole = ways["whole"]
    for way in ("split", "bytewise"):
        other = ways[way]
        if other.seen != whole.seen:
            raise Finding(
                f"framed two ways: whole saw {whole.seen!r}, {way} {other.seen!r}"
            )
        # A body cut by the end of the bytes is unanswered or a 400 depending
        # on when the cut is noticed; either goes to a client that left.
        if not (whole.cut or other.cut) and statuses[way] != statuses["whole"]:
            raise Finding(
                f"answered two ways: whole {statuses['whole']}, {way} {statuses[way]}"
            )


QUIETED_LOGGERS = ("root", "wsgisvc", "wsgisvc.access")


def quiet_logs() -> None:
    """The core logs every refusal and access line; a fuzz run wants none.
    (Tests that call this restore QUIETED_LOGGERS' levels afterwards.)"""
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
