"""The fuzzer's findings as regression tests over real sockets, on both
schedulers, and the harness checked against the seeds and a planted fault.

Each finding is xfail(strict=True) until its fix lands in wsgisvc/http/
(the lead's); then the test passes and its entry in ``harness.KNOWN`` goes.
"""

from __future__ import annotations

import logging

import pytest

from tests.fuzz import harness, seeds
from tests.unit._wsgi_inproc import (  # noqa: F401  (scheduler: a fixture)
    RecordingApp,
    connect,
    make_conf,
    read_response,
    read_until_closed,
    running,
    scheduler,
)
from wsgisvc.http.guard import MAX_HEADERS

REQUEST = b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(autouse=True)
def _log_levels_restored():
    """harness.quiet_logs() is for a fuzz run; in the suite its levels would
    silence the core's log for every test after this one."""
    loggers = [logging.getLogger(name) for name in harness.QUIETED_LOGGERS]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture(scope="module")
def app():
    return RecordingApp()


@pytest.fixture(scope="module")
def server(app, scheduler):  # noqa: F811  (a server per scheduler)
    with running(make_conf(max_header_line=harness.MAX_LINE), app) as srv:
        yield srv


def status_of(answer: bytes) -> bytes:
    return answer[9:12]


@pytest.mark.timeout(30)
def test_pipelined_head_split_across_reads_is_served(server):
    second = REQUEST % 2
    sock = connect(server)
    try:
        sock.sendall(REQUEST % 1 + second[:10])  # the next head begun, not whole
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(second[10:])
        assert read_response(sock).startswith(b"HTTP/1.1 200")
    finally:
        sock.close()


@pytest.mark.timeout(30)
def test_requests_before_a_bad_one_in_the_same_read_are_served(server, app):
    """RFC 9112 section 9.3: requests are answered in order; the first is
    complete and valid, only what follows it is malformed."""
    before = len(app.calls)
    sock = connect(server)
    try:
        sock.sendall(b"PUT /u HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhello")
        answer = read_until_closed(sock)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert [c["PATH_INFO"] for c in app.calls[before:]] == ["/u"]


def _answer(server, parts: list[bytes], wait: float = 1.0) -> bytes:
    """The status for ``parts`` sent one by one, each after the server had
    ``wait`` seconds to answer what came before (an answer ends the exchange)."""
    sock = connect(server)
    try:
        for part in parts:
            sock.sendall(part)
            sock.settimeout(wait)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue  # no answer yet: the server waits for the rest
            return status_of(data)
        return status_of(read_response(sock))
    finally:
        sock.close()


NEAR_LIMIT = {
    "header": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-L: " + b"l" * (harness.MAX_LINE - 3),
        b"\r\n\r\n",
    ),
    "request_line": (
        b"GET /" + b"a" * (harness.MAX_LINE - 11) + b" HTTP/1.1",
        b"\r\nHost: x\r\n\r\n",
    ),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("what", sorted(NEAR_LIMIT))
def test_line_near_the_limit_is_judged_the_same_split(server, what):
    """A fuzzer finding: a line was measured raw while open, name + value (or
    the target) once whole, so this header was served whole, refused split."""
    line, rest = NEAR_LIMIT[what]
    assert _answer(server, [line, rest]) == _answer(server, [line + rest])


HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"
AFTER_REQUEST_LINE = b"\r\nHost: x\r\n\r\n"
MAX = harness.MAX_LINE  # max_header_line, and max_url (not configured)
# A line without its CRLF, what follows, the answer: each limit, met and
# passed by one byte.
AT_THE_LIMIT = {
    "header_line_at_max": (HEAD + b"X-L: " + b"l" * (MAX - 5), b"\r\n\r\n", b"200"),
    "header_line_over": (HEAD + b"X-L: " + b"l" * (MAX - 4), b"\r\n\r\n", b"431"),
    "target_at_max": (
        b"GET /" + b"t" * (MAX - 1) + b" HTTP/1.1",
        AFTER_REQUEST_LINE,
        b"200",
    ),
    "target_over": (b"GET /" + b"t" * MAX + b" HTTP/1.1", AFTER_REQUEST_LINE, b"414"),
    # The longest method llhttp serves and a target at max_url: the request
    # line's room. Only a line with extra spaces (a 400 once whole) is longer
    # without a target too long.
    "request_line_at_room": (
        b"UNSUBSCRIBE /" + b"t" * (MAX - 1) + b" HTTP/1.1",
        AFTER_REQUEST_LINE,
        b"200",
    ),
    "request_line_at_room_spaced": (
        b"GET  /" + b"t" * (MAX + 6) + b" HTTP/1.1",
        AFTER_REQUEST_LINE,
        b"400",
    ),
    "request_line_over_room": (
        b"GET  /" + b"t" * (MAX + 7) + b" HTTP/1.1",
        AFTER_REQUEST_LINE,
        b"414",
    ),
}


def _fake_answers(wire: bytes) -> list[str]:
    """The statuses the core answers to ``wire`` (the harness's fake socket),
    checked to be the same in one piece, split and one byte at a time."""
    harness.quiet_logs()
    harness.check(bytes(harness.CONTROL) + wire)
    outcome = harness.serve([wire], "read")
    return [status for status, _ in harness.responses(outcome.sent, outcome.calls)]


@pytest.mark.parametrize("case", sorted(AT_THE_LIMIT))
def test_a_line_at_its_limit_is_served_one_byte_more_refused_bytewise(case):
    line, rest, status = AT_THE_LIMIT[case]
    assert _fake_answers(line + rest) == [status.decode()]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("split", ["whole", "open_line"])
@pytest.mark.parametrize("case", sorted(AT_THE_LIMIT))
def test_a_line_at_its_limit_is_served_one_byte_more_refused(server, case, split):
    """Over a socket, whole or with the line's CRLF in a later read."""
    line, rest, status = AT_THE_LIMIT[case]
    parts = [line + rest] if split == "whole" else [line, rest]
    assert _answer(server, parts, wait=0.3) == status


@pytest.mark.timeout(30)
@pytest.mark.parametrize("split", ["whole", "open_line"])
@pytest.mark.parametrize("extra, status", [(0, b"200"), (1, b"414")])
def test_max_url_len_over_max_header_line_is_the_target_limit(split, extra, status):
    """A request line may be longer than max_header_line when max_url_len
    (WSGIService's) asks for a longer target."""
    max_url = 4 * MAX
    line = b"GET /" + b"t" * (max_url - 1 + extra) + b" HTTP/1.1"
    parts = [line + AFTER_REQUEST_LINE]
    if split == "open_line":
        parts = [line, AFTER_REQUEST_LINE]
    conf = make_conf(max_header_line=MAX)
    with running(conf, RecordingApp(), max_url_len=max_url) as srv:
        assert _answer(srv, parts, wait=0.3) == status


# One header field too many (Host and MAX_HEADERS more), then the first byte
# of a name whose second is not a token character.
TOO_MANY = HEAD + b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("split", ["whole", "open_name"])
@pytest.mark.parametrize("name, status", [(b"X@", b"400"), (b"XY", b"431")])
def test_a_field_too_many_is_judged_when_the_next_name_ends(
    server, split, name, status
):
    """httptools passes a field on when the next name begins in a feed that
    ends there, at the name's colon otherwise: the field one too many was a
    431 when the next name's first byte came alone, a 400 (the bad name) in
    one piece."""
    wire = TOO_MANY + name + b": v\r\n\r\n"
    at = len(TOO_MANY) + 1 if split == "open_name" else len(wire)
    parts = [wire[:at], wire[at:]] if at < len(wire) else [wire]
    assert _answer(server, parts, wait=0.3) == status
    assert _fake_answers(wire) == [status.decode()]


def test_seeds_keep_every_property():
    """The harness over every seed: no finding that is not already known."""
    harness.quiet_logs()
    known = set()
    for seed in seeds.seeds():
        try:
            harness.check(seed)
        except harness.Known as exc:
            known.add(str(exc))
    assert len(seeds.seeds()) > 150
    assert known <= set(harness.KNOWN.values())


def test_harness_catches_a_response_that_is_not_http():
    methods = ["GET", "GET"]
    good = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert len(harness.responses(good * 2, methods)) == 2
    for bad in (
        good + b"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokk",
        b"HTTP/1.1 2000 OK\r\n\r\n",
    ):
        with pytest.raises(harness.Finding):
            harness.responses(bad, methods)


def test_harness_catches_a_request_framed_two_ways(monkeypatch):
    """A fault planted in the body reader (it drops a piece that arrives in a
    later read): the split ways see another body than the whole one."""
    from wsgisvc.http import parser

    body_parsed = parser.RequestParser._body_parsed

    def dropping(self):
        if self._current.received:
            self._pieces.clear()
            return
        body_parsed(self)

    monkeypatch.setattr(parser.RequestParser, "_body_parsed", dropping)
    wire = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd"
    with pytest.raises(harness.Finding, match="framed two ways"):
        harness.check(b"\x00\x00\x00\x00\x01" + wire)


TRAILER_TOO_LONG = (
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\nok\r\n0\r\nX-T: " + b"t" * harness.MAX_LINE + b"\r\n\r\n"
)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("split", ["whole", "bytewise"])
def test_a_trailer_field_over_the_line_limit_is_refused_either_way(server, split):
    """A fuzzer finding: a trailer field was measured only while its line was
    open, so it was refused when it trickled in and served when whole."""
    sock = connect(server)
    try:
        if split == "whole":
            sock.sendall(TRAILER_TOO_LONG)
        else:
            for i in range(len(TRAILER_TOO_LONG)):
                sock.sendall(TRAILER_TOO_LONG[i : i + 1])
        answer = read_until_closed(sock)
    finally:
        sock.close()
    assert status_of(answer) == b"400", answer[:200]


def test_the_harness_sees_a_long_trailer_framed_one_way():
    harness.quiet_logs()
    harness.check(b"\x00\x00\x00\x00\x01" + TRAILER_TOO_LONG)


UPGRADE_BAD_FRAMING = (
    b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: c\xf8unked\r\n"
    b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\nhello"
)


@pytest.mark.timeout(30)
def test_an_upgrade_whose_body_framing_llhttp_refuses_is_a_400(server):
    """A fuzzer finding: the body of an upgrade request is framed by a fresh
    llhttp fed a head of its framing fields, and that parser's error escaped
    the core instead of refusing the request."""
    sock = connect(server)
    try:
        sock.sendall(UPGRADE_BAD_FRAMING)
        assert status_of(read_until_closed(sock)) == b"400"
    finally:
        sock.close()
    sock = connect(server)
    try:
        sock.sendall(REQUEST % 3)
        assert read_response(sock).startswith(b"HTTP/1.1 200")
    finally:
        sock.close()


def test_the_harness_sees_an_upgrade_with_bad_framing_refused():
    harness.quiet_logs()
    harness.check(b"\x00\x00\x00\x00\x01" + UPGRADE_BAD_FRAMING)


LONG_TRAILER_WITH_SPACES = (
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\nX-T:    " + b"1" * (harness.MAX_LINE - 3) + b"\r\n\r\n"
)


def test_a_trailer_field_is_judged_by_its_name_and_value_however_it_arrives():
    """A fuzzer finding: a trailer line longer than max_header_line as sent,
    its name and value within it, was served whole and refused when it
    trickled in (the framing bound counted the open line's bytes)."""
    harness.quiet_logs()
    harness.check(b"\x00\x00\x00\x00\x01" + LONG_TRAILER_WITH_SPACES)


@pytest.mark.timeout(60)
def test_endless_chunk_extensions_are_refused(server):
    """Framing bytes that never let llhttp complete a unit are a 400 once
    past parser.FRAMING_LIMIT, not read for as long as the client sends."""
    from wsgisvc.http.parser import FRAMING_LIMIT

    sock = connect(server)
    try:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;e="
        )
        piece = b"x" * 65536
        sent = 0
        try:
            while sent <= FRAMING_LIMIT + len(piece):
                sock.sendall(piece)
                sent += len(piece)
        except OSError:
            pass  # refused and closed meanwhile
        answer = read_until_closed(sock)
    finally:
        sock.close()
    assert status_of(answer) == b"400", answer[:200]


def test_a_head_end_spread_over_three_reads_ends_the_head():
    """A fuzzer finding: the head end (CRLF CRLF) arriving as ``\\r``,
    ``\\n\\r``, ``\\n...`` was missed, because only the last read's last bytes
    were kept, so bytes after the head were judged as a header name and held
    back from llhttp: the chunk size ``Transfe+1`` became ``1``, a body the
    one-read way refuses. The harness's split way sends exactly those reads."""
    harness.quiet_logs()
    wire = (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"Transfe+1\r\na\r\n0\r\n\r\n"
    )
    pieces = harness.split_points(wire, int.from_bytes(b"\x8b\xc9\x91G", "big"))
    assert b"chunked\r" in pieces[1] and pieces[2] == b"\n\r", pieces
    harness.check(b"\x03\x8b\xc9\x91G" + wire)
