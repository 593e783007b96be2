"""The sans-I/O protocol (wsgisvc.http.protocol) on its own: no socket, no
runtime, no thread, and a clock the test sets (plain floats given as ``now``).

Each test feeds a :class:`Protocol` bytes, as a runtime would, and checks
what it decides: the deadlines, the request (or its refusal), the response's
framing bytes and what the connection does after it. The same rules are
tested over real sockets by test_wsgi_http_core.py and its siblings; here
each one is seen alone, at its exact instant and byte.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit._http_cases import BAD_REQUESTS
from wsgisvc.http.limits import DRAIN_LIMIT, LINGER_SECONDS, Limits
from wsgisvc.http.parser import PIPELINE_DEPTH
from wsgisvc.http.protocol import (
    After,
    Protocol,
    Refusal,
    Request,
    Shared,
    check_head,
)

HEADER_TIMEOUT = 1.0
KEEPALIVE = 5.0
LIMITS = Limits(
    max_line=256,  # as tests/unit/_http_cases.py assumes
    max_url=256,
    header_timeout=HEADER_TIMEOUT,
    keepalive_timeout=KEEPALIVE,
    socket_timeout=10.0,
    keep_alive=True,
)
DATE = "Date: Mon, 07 Dec 2026 07:00:00 GMT\r\n"
HOST = "Host: x"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def request(*lines: str, body: bytes = b"") -> bytes:
    """A request from its request line and header lines (by default a GET
    of / with a Host), then ``body`` as it is."""
    lines = lines or ("GET / HTTP/1.1", HOST)
    return "".join(line + "\r\n" for line in lines).encode() + b"\r\n" + body


def post(length: int, body: bytes = b"", *more: str) -> bytes:
    """A POST with a Content-Length of ``length`` and the first ``body`` bytes."""
    return request(
        "POST / HTTP/1.1", HOST, f"Content-Length: {length}", *more, body=body
    )


def chunked(body: bytes = b"", *more: str) -> bytes:
    """A chunked POST with the first ``body`` bytes of its framed body."""
    return request(
        "POST / HTTP/1.1", HOST, "Transfer-Encoding: chunked", *more, body=body
    )


def connection(now: float = 0.0, **changes) -> Protocol:
    """A connection accepted at ``now``, on a server with LIMITS and ``changes``."""
    return Protocol(Shared(dataclasses.replace(LIMITS, **changes)), now=now)


def serving(data: bytes, now: float = 0.0, **changes) -> tuple[Protocol, Request]:
    """A connection that received ``data`` at ``now`` and serves its request."""
    protocol = connection(now, **changes)
    protocol.receive(data, now)
    assert protocol.ready
    event = protocol.next_event()
    assert isinstance(event, Request), event.error.reason
    return protocol, event


def respond(
    protocol: Protocol,
    status: str = "200 OK",
    headers: tuple = (("Content-Length", "2"),),
    body: bytes = b"ok",
    total: int | None = None,
    failed: bool = False,
) -> bytes:
    """The bytes of a whole response with ``body`` in one piece."""
    head = protocol.head(status, list(headers), body, total, DATE, failed)
    return head + protocol.body(body) + protocol.end_body()


def refused(data: bytes, **changes) -> Refusal:
    """The refusal a connection that received ``data`` gives."""
    protocol = connection(**changes)
    protocol.receive(data, 0.0)
    assert protocol.ready
    event = protocol.next_event()
    assert isinstance(event, Refusal), event.line
    return event


def head_of(wire: bytes) -> bytes:
    """The head of a response's bytes, each line with its CRLF."""
    return wire.partition(b"\r\n\r\n")[0] + b"\r\n"


# --- every timeout instant --------------------------------------------------------


def test_first_head_is_due_header_timeout_after_the_accept():
    """A new connection's first head is due header_timeout after the accept
    (the ``now`` it was built with), before any byte came."""
    protocol = connection(now=100.0)
    assert protocol.deadline == 100.0 + HEADER_TIMEOUT
    assert protocol.wait_deadline(100.5) == 100.0 + HEADER_TIMEOUT


def test_head_deadline_is_for_the_whole_head_not_per_read():
    """A head trickled in reads keeps the deadline of the accept: bytes at
    t+0.9 and t+1.1 do not move it (a slow client gets no more time per read)."""
    protocol = connection(now=100.0)
    protocol.receive(b"GET / HT", 100.9)
    assert protocol.deadline == 100.0 + HEADER_TIMEOUT
    protocol.receive(b"TP/1.1\r\nHo", 101.1)
    assert protocol.deadline == 100.0 + HEADER_TIMEOUT
    assert not protocol.ready


def test_no_deadline_while_a_request_is_served():
    """While a request is served the protocol sets no deadline: a body read
    or a send waits the socket timeout, in the runtime."""
    protocol, _ = serving(request(), now=3.0)
    assert protocol.deadline is None


def test_keepalive_wait_counts_from_the_response_end():
    """After a response kept alive, the wait for the next request's first
    byte is keepalive_timeout from the response's end."""
    protocol, _ = serving(request(), now=3.0)
    respond(protocol)
    assert protocol.response_ended(20.0) is After.KEEP
    assert protocol.deadline is None
    assert protocol.wait_deadline(20.0) == 20.0 + KEEPALIVE


def test_first_byte_after_keepalive_starts_the_head_deadline():
    """The next request's first byte starts its head's deadline; the
    keep-alive wait no longer counts."""
    protocol, _ = serving(request())
    respond(protocol)
    protocol.response_ended(20.0)
    protocol.receive(b"G", 23.0)
    assert protocol.deadline == 23.0 + HEADER_TIMEOUT
    assert protocol.wait_deadline(20.0) == 23.0 + HEADER_TIMEOUT
    protocol.receive(b"ET / HTTP/1.1\r\n", 23.9)
    assert protocol.deadline == 23.0 + HEADER_TIMEOUT


@pytest.mark.parametrize("rest", [b"G", b"GET / HTTP/1.1\r\nHo"])
def test_pipelined_head_deadline_counts_from_the_response_end(rest):
    """A head begun in the same read as the request before it is due
    header_timeout after that request's response ended, not after the read:
    it could not be served before."""
    protocol, _ = serving(request() + rest, now=10.0)
    respond(protocol)
    assert protocol.response_ended(20.0) is After.KEEP
    assert protocol.deadline == 20.0 + HEADER_TIMEOUT


@pytest.mark.parametrize("grace, wait", [(0.5, 0.5), (100.0, KEEPALIVE)])
def test_stop_shortens_a_kept_alive_wait_to_the_grace(grace, wait):
    """A connection kept alive by a response whose head went out before the
    stop waits min(keepalive_timeout, grace) for its next request."""
    protocol, _ = serving(request())
    respond(protocol)
    protocol.shared.stop(grace)
    assert protocol.response_ended(20.0) is After.KEEP
    assert protocol.wait_deadline(20.0) == 20.0 + wait


def test_drain_deadline_is_the_response_end_plus_linger():
    """The unread rest of a body is drained until LINGER_SECONDS after the
    response's end."""
    protocol, _ = serving(post(10, b"abcd"))
    respond(protocol)
    assert protocol.response_ended(30.0) is After.DRAIN
    assert protocol.deadline == 30.0 + LINGER_SECONDS
    protocol.receive(b"ef", 30.5)
    assert protocol.response_ended(30.5) is After.DRAIN
    assert protocol.deadline == 30.0 + LINGER_SECONDS


def test_drain_past_its_deadline_lingers():
    """A rest that does not arrive within the drain's deadline ends the
    drain: linger (the rest is still unread), from then."""
    protocol, _ = serving(post(10, b"abcd"))
    respond(protocol)
    assert protocol.response_ended(30.0) is After.DRAIN
    protocol.receive(b"ef", 30.0 + LINGER_SECONDS)
    assert protocol.response_ended(30.0 + LINGER_SECONDS) is After.LINGER


def test_refusal_lingers_until_linger_seconds_after_it():
    """A refusal is followed by a linger that ends LINGER_SECONDS after it
    went out."""
    protocol = connection()
    protocol.receive(request("GET / HTTP/1.1"), 0.0)
    protocol.refusal(protocol.next_event().error)
    assert protocol.refused(40.0) is After.LINGER
    assert protocol.deadline == 40.0 + LINGER_SECONDS


@pytest.mark.parametrize(
    "data, after",
    [(post(4, b"abcd"), After.CLOSE), (post(10, b"abcd"), After.LINGER)],
    ids=["body_whole", "body_unread"],
)
def test_broken_response_lingers_only_while_the_body_is_unread(data, after):
    """A response that did not go out as framed ends the connection: at once
    when the request was read whole, after a linger when bytes of it may
    still come (closing on them would reset the connection)."""
    protocol, _ = serving(data)
    respond(protocol)
    assert protocol.response_ended(50.0, broken=True) is after
    if after is After.LINGER:
        assert protocol.deadline == 50.0 + LINGER_SECONDS


@pytest.mark.parametrize(
    "pieces, keeps",
    [
        ([(b"x", 50.5)], [True]),
        ([(b"x", 50.0 + LINGER_SECONDS)], [False]),
        ([(b"", 50.1)], [False]),
        ([(b"x" * DRAIN_LIMIT, 50.1)], [True]),
        ([(b"x" * DRAIN_LIMIT, 50.1), (b"x", 50.2)], [True, False]),
    ],
    ids=["before_deadline", "at_deadline", "client_closed", "at_limit", "past_limit"],
)
def test_drop_says_close_at_the_deadline_the_limit_or_the_client_close(pieces, keeps):
    """While lingering, ``drop`` says close (False) at the deadline, past
    DRAIN_LIMIT bytes dropped in all, or at the client's close (b"")."""
    protocol = connection()
    protocol.receive(request("GET / HTTP/1.1"), 0.0)
    protocol.next_event()
    assert protocol.refused(50.0) is After.LINGER
    assert [protocol.drop(data, now) for data, now in pieces] == keeps
    assert protocol.closed is not keeps[-1]


# --- request framing ------------------------------------------------------------


def test_content_length_body_arrives_in_pieces():
    """A Content-Length body comes into ``message.body`` read by read, and
    the message is complete at its last byte."""
    protocol, event = serving(post(7, b"ab"))
    message = event.message
    assert b"".join(message.body) == b"ab" and not message.complete
    protocol.receive(b"cde", 1.0)
    assert message.body_left == 2 and not message.complete
    protocol.receive(b"fg", 2.0)
    assert b"".join(message.body) == b"abcdefg" and message.complete


def test_chunked_body_arrives_in_pieces():
    """A chunked body's data comes into ``message.body`` without its framing,
    whichever byte a read ends on; the last chunk completes it."""
    protocol, event = serving(chunked(b"3\r\nab"))
    message = event.message
    for piece in (b"c\r", b"\n2\r\nde\r\n", b"0\r\n", b"\r\n"):
        assert not message.complete
        protocol.receive(piece, 1.0)
    assert b"".join(message.body) == b"abcde" and message.complete


REFUSALS = {
    "content_length_and_transfer_encoding": (
        request(
            "POST / HTTP/1.1",
            HOST,
            "Content-Length: 5",
            "Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
        "400",
    ),
    "two_content_lengths": (
        request("POST / HTTP/1.1", HOST, "Content-Length: 1", "Content-Length: 1"),
        "400",
    ),
    "transfer_encoding_not_chunked": (
        request("POST / HTTP/1.1", HOST, "Transfer-Encoding: gzip"),
        "400",
    ),
    "transfer_encoding_chunked_not_last": (
        request("POST / HTTP/1.1", HOST, "Transfer-Encoding: chunked, gzip"),
        "400",
    ),
    "transfer_encoding_in_http10": (
        request("POST / HTTP/1.0", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
        "400",
    ),
    "no_host_in_http11": (request("GET / HTTP/1.1"), "400"),
    "two_hosts": (request("GET / HTTP/1.1", HOST, HOST), "400"),
    "host_list": (request("GET / HTTP/1.1", "Host: a, b"), "400"),
    "host_userinfo": (request("GET / HTTP/1.1", "Host: u@a"), "400"),
    "host_bad_port": (request("GET / HTTP/1.1", "Host: a:8x"), "400"),
    "absolute_form_bad_authority": (request("GET http://u@a/ HTTP/1.1", HOST), "400"),
    "absolute_form_other_scheme": (request("GET ftp://a/ HTTP/1.1", HOST), "400"),
    "connect": (request("CONNECT a:443 HTTP/1.1", "Host: a:443"), "400"),
    "connect_origin_form": (request("CONNECT / HTTP/1.1", HOST), "400"),
    "asterisk_form_not_options": (request("GET * HTTP/1.1", HOST), "400"),
    "http2": (request("GET / HTTP/2.0", HOST), "505"),
    "target_too_long": (request("GET /" + "a" * 300 + " HTTP/1.1", HOST), "414"),
    "header_line_too_long": (request("GET / HTTP/1.1", HOST, "X: " + "b" * 300), "431"),
    "too_many_headers": (
        request("GET / HTTP/1.1", HOST, *(f"X-{i}: v" for i in range(101))),
        "431",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_request_is_a_refusal_with_its_status(case):
    """Each request RFC 9112 lets a server refuse, or that two parsers could
    frame differently, is a Refusal with its status, never a Request."""
    data, status = REFUSALS[case]
    assert refused(data).error.status.split()[0] == status


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_shared_bad_requests_are_refused_by_the_protocol_alone(case):
    """The bad requests the socket tests send (tests/unit/_http_cases.py) are
    refused with the same status by the protocol alone."""
    data, status = BAD_REQUESTS[case]
    assert refused(data).error.status.encode().split()[0] == status


@pytest.mark.parametrize(
    "data",
    [
        request("GET /" + "a" * 300 + " HTTP/1.1", HOST),
        request("GET / HTTP/1.1", HOST, "X: " + "b" * 300),
    ],
    ids=["414", "431"],
)
def test_head_past_a_limit_is_refused_before_it_is_whole(data):
    """A head line past a limit is refused at its first byte too many: no
    message, and none of the head needs to come."""
    protocol = connection()
    protocol.receive(data[:290], 0.0)
    assert protocol.ready
    refusal = protocol.next_event()
    assert isinstance(refusal, Refusal) and refusal.message is None
    assert refusal.line == "-"


@pytest.mark.parametrize(
    "data, authority",
    [
        (
            request("GET http://api.example:8774/v1 HTTP/1.1", "Host: other"),
            "api.example:8774",
        ),
        (request("GET http://a HTTP/1.1", "Host: a"), "a"),
    ],
)
def test_absolute_form_authority_replaces_host(data, authority):
    """An absolute-form target's authority is the request's host, whatever
    its Host says (RFC 9112 section 3.2.2)."""
    _, event = serving(data)
    assert event.authority == authority
    assert event.path.startswith("/")


@pytest.mark.parametrize(
    "lines",
    [
        ("GET http://a/ HTTP/1.1", "Host: a", "Host: b"),
        ("GET http://a/ HTTP/1.1", "Host: a, b"),
        ("GET http://a/ HTTP/1.1",),
    ],
    ids=["two_hosts", "host_list", "no_host"],
)
def test_absolute_form_does_not_excuse_the_host_lines(lines):
    """RFC 9112 section 3.2: an HTTP/1.1 request without exactly one valid
    Host is a 400, absolute-form or not; a front proxy that routes on Host
    would read a request with two differently from the application."""
    assert refused(request(*lines)).error.status == "400 Bad Request"


@pytest.mark.parametrize(
    "data, path",
    [
        (request("OPTIONS * HTTP/1.1", HOST), "*"),
        (request("GET /p?q HTTP/1.0"), "/p"),
    ],
    ids=["options_asterisk", "http10_without_host"],
)
def test_acceptable_heads_are_requests(data, path):
    """OPTIONS may target ``*``, and HTTP/1.0 needs no Host."""
    assert serving(data)[1].path == path


def test_refusal_bytes_close_the_connection():
    """A refusal answers with its status, ``Connection: close`` and its
    reason as a plain-text body, and the connection is not kept."""
    refusal = refused(request("GET * HTTP/1.1", HOST))
    protocol = connection()
    wire = protocol.refusal(refusal.error)
    body = refusal.error.reason.encode() + b"\n"
    assert wire == (
        b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
        b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert protocol.status == "400 Bad Request" and not protocol.keep
    assert protocol.refusal(refusal.error, status_only=True) == b""


def test_stalled_body_is_a_408_on_its_message():
    """A body with no byte within the socket timeout is the request's 408,
    kept on its message (the same error when asked again)."""
    protocol, event = serving(post(5, b"ab"))
    error = protocol.stalled()
    assert error.status == "408 Request Timeout"
    assert "client_socket_timeout (10 s)" in error.reason
    assert event.message.error is error and protocol.stalled() is error
    assert protocol.refusal(error).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert protocol.response_ended(1.0, broken=True) is After.LINGER


def test_client_close_ends_the_connection():
    """``receive(b"")`` is the client's close: nothing is lingered for."""
    protocol, _ = serving(request())
    protocol.receive(b"", 1.0)
    assert protocol.closed
    respond(protocol)
    assert protocol.response_ended(2.0) is After.CLOSE


# --- response framing ------------------------------------------------------------


def test_app_content_length_is_kept_and_said_once():
    """The application's Content-Length frames the body; said twice (the
    same), it goes out once; no chunked coding is added."""
    protocol, _ = serving(request())
    headers = (("Content-Length", "5"), ("content-length", "5"))
    wire = respond(protocol, headers=headers, body=b"hello")
    assert (
        wire
        == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n" + DATE.encode() + b"\r\nhello"
    )
    assert protocol.length == 5 and protocol.keep


def test_list_total_becomes_content_length():
    """A body whose length is known before the head (a list) gets it as its
    Content-Length."""
    protocol, _ = serving(request())
    wire = respond(protocol, headers=(), body=b"abc", total=3)
    assert b"\r\nContent-Length: 3\r\n" in head_of(wire) and wire.endswith(
        b"\r\n\r\nabc"
    )
    assert protocol.response_ended(1.0) is After.KEEP


def test_http11_body_without_length_is_chunked():
    """HTTP/1.1 without a length: chunked, each piece a chunk, an empty
    piece none (it would end the body), then the last chunk."""
    protocol, _ = serving(request())
    head = protocol.head("200 OK", [], b"abc", None, DATE)
    assert b"\r\nTransfer-Encoding: chunked\r\n" in head
    assert b"Connection" not in head
    assert protocol.body(b"abc") == b"3\r\nabc\r\n"
    assert protocol.body(b"") == b""
    assert protocol.body(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert protocol.end_body() == b"0\r\n\r\n"
    assert protocol.response_ended(1.0) is After.KEEP


def test_http10_body_without_length_is_delimited_by_the_close():
    """HTTP/1.0 has no chunked coding: a body without a length ends with
    the connection, which the head says, even to a keep-alive client."""
    protocol, _ = serving(request("GET / HTTP/1.0", "Connection: keep-alive"))
    head = protocol.head("200 OK", [], b"abc", None, DATE)
    assert b"\r\nConnection: close\r\n" in head and b"Transfer-Encoding" not in head
    assert protocol.body(b"abc") == b"abc" and protocol.end_body() == b""
    assert protocol.response_ended(1.0) is After.CLOSE


@pytest.mark.parametrize(
    "method, status",
    [
        ("HEAD", "200 OK"),
        ("GET", "204 No Content"),
        ("GET", "304 Not Modified"),
        ("GET", "103 Early Hints"),
    ],
)
def test_no_body_for_head_204_304_1xx(method, status):
    """A response to HEAD, and a 1xx, 204 or 304, has no body: nothing the
    application gives is sent, no chunked coding, no length to fall short
    of, and the connection is kept."""
    protocol, _ = serving(request(f"{method} / HTTP/1.1", HOST))
    head = protocol.head(status, [("Content-Length", "3")], b"abc", None, DATE)
    assert b"Transfer-Encoding" not in head and b"Connection" not in head
    assert protocol.body(b"abc") == b"" and protocol.end_body() == b""
    assert not protocol.short and protocol.sent == 0
    assert protocol.response_ended(1.0) is After.KEEP


def test_head_without_length_is_not_chunked():
    """A HEAD answered without a length gets no chunked coding: no body follows."""
    protocol, _ = serving(request("HEAD / HTTP/1.1", HOST))
    head = protocol.head("200 OK", [], b"", None, DATE)
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert protocol.end_body() == b""


def test_bytes_past_content_length_are_dropped():
    """Body bytes past the head's Content-Length are not sent: counted in
    ``dropped``."""
    protocol, _ = serving(request())
    protocol.head("200 OK", [("Content-Length", "3")], b"ab", None, DATE)
    assert protocol.body(b"ab") == b"ab"
    assert protocol.body(b"cde") == b"c"
    assert protocol.body(b"f") == b""
    assert (protocol.sent, protocol.dropped, protocol.short) == (3, 3, False)


def test_body_ended_short_of_its_content_length():
    """A body that ends before its Content-Length is ``short``."""
    protocol, _ = serving(request())
    protocol.head("200 OK", [("Content-Length", "5")], b"ab", None, DATE)
    protocol.body(b"ab")
    assert protocol.short
    protocol.body(b"cde")
    assert not protocol.short


@pytest.mark.parametrize(
    "first, total",
    [(b"ab", 2), (b"abcdef", None)],
    ids=["total_belies", "first_piece_belies"],
)
def test_content_length_belied_before_the_head_is_a_value_error(first, total):
    """A Content-Length that the list's total, or the first piece alone,
    shows wrong is a ValueError, and nothing went out."""
    protocol, _ = serving(request())
    with pytest.raises(ValueError, match="Content-Length 5"):
        protocol.head("200 OK", [("Content-Length", "5")], first, total, DATE)
    assert not protocol.head_sent


def test_http10_keep_alive_is_answered_keep_alive():
    """An HTTP/1.0 client that asked for keep-alive is told it is kept."""
    protocol, _ = serving(request("GET / HTTP/1.0", "Connection: keep-alive"))
    wire = respond(protocol)
    assert b"\r\nConnection: keep-alive\r\n" in head_of(wire)
    assert protocol.response_ended(1.0) is After.KEEP


@pytest.mark.parametrize(
    "lines, changes",
    [
        (("GET / HTTP/1.0",), {}),
        (("GET / HTTP/1.1", HOST, "Connection: keep-alive, Close"), {}),
        (("GET / HTTP/1.1", HOST, "Connection: x", "Connection: close"), {}),
        (("GET / HTTP/1.1", HOST), {"keep_alive": False}),
    ],
    ids=["http10", "close_token", "close_second_line", "server_keep_alive_off"],
)
def test_connection_closes_when_the_client_or_server_says_so(lines, changes):
    """HTTP/1.0 without keep-alive, a ``close`` token in any Connection
    line, or a server without keep-alive: the head says close."""
    protocol, _ = serving(request(*lines), **changes)
    assert b"\r\nConnection: close\r\n" in head_of(respond(protocol))
    assert protocol.response_ended(1.0) is After.CLOSE


def test_app_connection_close_is_honoured():
    """The application's ``Connection: close`` closes; the head says it once."""
    protocol, _ = serving(request())
    wire = respond(protocol, headers=(("Content-Length", "2"), ("Connection", "close")))
    assert head_of(wire).count(b"Connection") == 1
    assert b"\r\nConnection: close\r\n" in head_of(wire)
    assert protocol.response_ended(1.0) is After.CLOSE


def test_failed_application_response_closes():
    """The 500 of a failed application closes the connection."""
    protocol, _ = serving(request())
    wire = respond(protocol, status="500 Internal Server Error", failed=True)
    assert b"\r\nConnection: close\r\n" in head_of(wire)
    assert protocol.response_ended(1.0) is After.CLOSE


@pytest.mark.parametrize(
    "status, headers, error",
    [
        ("200", [], ValueError),
        ("200 OK\r\nX: y", [], ValueError),
        ("200 OK", [("X-A", "a\r\nX-B: b")], ValueError),
        ("200 OK", [("X-A", "a\nb")], ValueError),
        ("200 OK", [("X-A", "\u20ac")], ValueError),
        ("200 OK", [("X A", "b")], ValueError),
        ("200 OK", [("X:A", "b")], ValueError),
        ("200 OK", [("", "b")], ValueError),
        ("200 OK", [("Transfer-Encoding", "chunked")], ValueError),
        ("200 OK", [("Content-Length", "2"), ("Content-Length", "3")], ValueError),
        ("200 OK", [("Content-Length", "-2")], ValueError),
        ("200 OK", [(b"X-A", "b")], TypeError),
    ],
    ids=[
        "status_without_reason",
        "crlf_in_status",
        "crlf_in_value",
        "lf_in_value",
        "past_latin1",
        "space_in_name",
        "colon_in_name",
        "empty_name",
        "transfer_encoding",
        "two_lengths",
        "signed_length",
        "bytes_name",
    ],
)
def test_check_head_rejects_what_the_wire_cannot_carry(status, headers, error):
    """A status or header that would split the response, a name that is not
    a token, a Transfer-Encoding (the server frames the body) or two
    different Content-Lengths are refused before anything is sent."""
    with pytest.raises(error):
        check_head(status, headers)


def test_check_head_accepts_a_plain_head():
    """Tabs, latin-1 text and the same Content-Length twice pass."""
    check_head(
        "200 OK",
        [
            ("X-A", "a\tb"),
            ("X-B", "caf\xe9"),
            ("Content-Length", "2"),
            ("content-length", "2"),
        ],
    )


# --- keep-alive and the stop -------------------------------------------------------


def test_stop_makes_the_next_head_say_close():
    """Once the server stops, a response's head says ``Connection: close``."""
    protocol, _ = serving(request())
    protocol.shared.stop(2.0)
    assert b"\r\nConnection: close\r\n" in head_of(respond(protocol))
    assert protocol.response_ended(1.0) is After.CLOSE


def test_head_sent_before_the_stop_keeps_its_keep():
    """A response whose head went out kept alive before the stop keeps the
    connection: the client was told so."""
    protocol, _ = serving(request())
    head = protocol.head("200 OK", [("Content-Length", "2")], b"ok", None, DATE)
    assert b"Connection" not in head
    protocol.shared.stop(2.0)
    protocol.body(b"ok")
    assert protocol.response_ended(1.0) is After.KEEP


def test_small_unread_rest_is_drained_then_kept():
    """A body the application left unread, whose rest is no more than
    DRAIN_LIMIT, is drained (read and dropped) and the connection kept; the
    request after it is served."""
    protocol, _ = serving(post(10, b"abcd"))
    assert b"Connection" not in head_of(respond(protocol))
    assert protocol.response_ended(1.0) is After.DRAIN
    protocol.receive(b"ef", 1.1)
    assert protocol.response_ended(1.1) is After.DRAIN
    protocol.receive(b"ghij" + request("GET /next HTTP/1.1", HOST), 1.2)
    assert protocol.response_ended(1.2) is After.KEEP
    assert protocol.ready and protocol.next_event().path == "/next"


@pytest.mark.parametrize(
    "length, received, keep",
    [(DRAIN_LIMIT, 0, True), (DRAIN_LIMIT + 1, 0, False), (DRAIN_LIMIT + 1, 1, True)],
    ids=["rest_at_limit", "rest_past_limit", "rest_at_limit_after_a_byte"],
)
def test_unread_rest_past_drain_limit_closes(length, received, keep):
    """A body whose rest still to come is larger than DRAIN_LIMIT is not
    drained: the head says close and the connection lingers."""
    protocol, _ = serving(post(length, b"x" * received))
    assert (b"\r\nConnection: close\r\n" not in head_of(respond(protocol))) is keep
    assert protocol.response_ended(1.0) is (After.DRAIN if keep else After.LINGER)


def test_bytes_buffered_before_the_drain_do_not_count_against_it():
    """The head says keep-alive when the rest still to come is no more than
    DRAIN_LIMIT; the body already received (read by the runtime, left by the
    application) costs no read to drop, so the drain keeps that promise."""
    protocol, _ = serving(post(100_000, b"x" * 50_000))
    assert b"Connection" not in head_of(respond(protocol))
    assert protocol.response_ended(1.0) is After.DRAIN
    protocol.receive(b"x" * 20_000, 1.1)
    assert protocol.response_ended(1.1) is After.DRAIN
    protocol.receive(b"x" * 30_000, 1.2)
    assert protocol.response_ended(1.2) is After.KEEP


@pytest.mark.parametrize(
    "data, keep",
    [(chunked(b"3\r\nabc\r\n"), False), (chunked(b"3\r\nabc\r\n0\r\n\r\n"), True)],
    ids=["chunked_unread", "chunked_whole"],
)
def test_unread_chunked_body_closes(data, keep):
    """The rest of a chunked body has no known size: left unread, the head
    says close; received whole, the connection is kept."""
    protocol, _ = serving(data)
    assert (b"\r\nConnection: close\r\n" not in head_of(respond(protocol))) is keep
    assert protocol.response_ended(1.0) is (After.KEEP if keep else After.LINGER)


def test_continue_never_sent_closes():
    """A client that waits for a 100 Continue it never got holds its body
    back: there is nothing to drain, the head says close."""
    protocol, _ = serving(post(5, b"", "Expect: 100-continue"))
    assert protocol.awaiting_continue
    assert b"\r\nConnection: close\r\n" in head_of(respond(protocol))
    assert protocol.response_ended(1.0) is After.LINGER


def test_continue_sent_then_unread_is_drained():
    """After a 100 Continue the body comes: left unread, it is drained."""
    protocol, _ = serving(post(5, b"", "Expect: 100-continue"))
    assert protocol.continue_bytes() == CONTINUE
    assert not protocol.awaiting_continue
    assert b"Connection" not in head_of(respond(protocol))
    assert protocol.response_ended(1.0) is After.DRAIN


@pytest.mark.parametrize(
    "data, sent",
    [
        (post(5, b"", "Expect: 100-continue"), CONTINUE),
        (post(5, b"", "Expect: 100-Continue"), CONTINUE),
        (post(5, b"ab", "Expect: 100-continue"), CONTINUE),
        (post(5, b"abcde", "Expect: 100-continue"), b""),
        (post(5), b""),
        (
            request("POST / HTTP/1.0", "Content-Length: 5", "Expect: 100-continue"),
            b"",
        ),
    ],
    ids=[
        "expect",
        "expect_any_case",
        "body_begun",
        "body_whole",
        "no_expect",
        "http10",
    ],
)
def test_continue_bytes_only_once_only_for_http11_expect(data, sent):
    """100 Continue goes out once, to an HTTP/1.1 request with ``Expect:
    100-continue`` whose body did not come whole already."""
    protocol, _ = serving(data)
    assert protocol.continue_bytes() == sent
    assert protocol.continue_bytes() == b""


def test_no_continue_after_the_final_head():
    """100 Continue is an interim response: once the final response's head
    went out (the application answered, then read the body), none follows,
    or it would land inside that response's body."""
    protocol, _ = serving(post(5, b"", "Expect: 100-continue"))
    protocol.head("200 OK", [], b"", None, DATE)
    assert protocol.continue_bytes() == b""


# --- pipelining ---------------------------------------------------------------------


def test_pipelined_request_is_ready_after_keep_without_more_bytes():
    """Two requests in one read: once the first's response ended kept
    alive, the second is ready without another read."""
    protocol, first = serving(
        request("GET /1 HTTP/1.1", HOST) + request("GET /2 HTTP/1.1", HOST)
    )
    assert first.path == "/1"
    respond(protocol)
    assert protocol.response_ended(4.0) is After.KEEP
    assert protocol.ready
    second = protocol.next_event()
    assert second.path == "/2"
    assert protocol.started == 4.0  # it could not be served before


def test_pipeline_depth_bounds_the_requests_parsed_ahead():
    """However many requests one read holds, at most PIPELINE_DEPTH are
    parsed ahead; the rest wait unparsed and are served in order."""
    count = PIPELINE_DEPTH + 3
    data = b"".join(request(f"GET /{i} HTTP/1.1", HOST) for i in range(count))
    protocol = connection()
    protocol.receive(data, 0.0)
    served = []
    while protocol.ready:
        assert len(protocol.parser.messages) <= PIPELINE_DEPTH
        served.append(protocol.next_event().path)
        respond(protocol)
        assert protocol.response_ended(1.0) is After.KEEP
    assert len(protocol.parser.messages) == 0
    assert served == [f"/{i}" for i in range(count)]
    assert protocol.deadline is None


def test_pipelined_bad_request_is_refused_after_the_good_one():
    """A bad request after a good one in the same read is refused only once
    the good one was answered."""
    protocol, first = serving(request() + request("GET / HTTP/2.0", HOST))
    respond(protocol)
    assert protocol.response_ended(1.0) is After.KEEP
    assert protocol.ready
    refusal = protocol.next_event()
    assert isinstance(refusal, Refusal) and refusal.error.status.startswith("505")


@pytest.mark.parametrize("why", ["stop", "failed", "app_close"])
def test_close_after_a_pipelined_request_lingers(why):
    """A response that closes the connection while the client has begun the
    next request (pipelined) is followed by a linger, not a close: more of
    that request may be on the way, and a close would reset the connection
    and lose the response (RFC 9112 section 9.6)."""
    protocol, _ = serving(request() + request("GET /2 HTTP/1.1", HOST))
    headers = [("Content-Length", "2")]
    if why == "stop":
        protocol.shared.stop(1.0)
    if why == "app_close":
        headers.append(("Connection", "close"))
    wire = respond(protocol, headers=tuple(headers), failed=why == "failed")
    assert b"\r\nConnection: close\r\n" in head_of(wire)
    assert protocol.response_ended(1.0) is After.LINGER


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_a_head_answer_makes_up_no_content_length(version):
    """A HEAD answer keeps the application's Content-Length (the one a GET
    would have) and makes none up from a list body, which may be the GET's
    or empty; it has no body to frame, so the connection is kept."""
    protocol, _ = serving(
        request(f"HEAD / HTTP/{version}", HOST, "Connection: keep-alive")
    )
    wire = respond(protocol, headers=(), body=b"", total=0)
    assert b"Content-Length" not in wire and b"Transfer-Encoding" not in wire
    assert b"Connection: close" not in wire
    protocol, _ = serving(request("HEAD / HTTP/1.1", HOST))
    wire = respond(protocol, headers=(("Content-Length", "5"),), body=b"")
    assert b"\r\nContent-Length: 5\r\n" in wire and wire.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("status", ["204 No Content", "101 Hm"])
def test_no_content_length_on_a_204_or_1xx(status):
    """RFC 9110 section 8.6: no Content-Length in a 1xx or 204 answer; one
    from the application is not sent."""
    protocol, _ = serving(request())
    wire = respond(protocol, status, headers=(("Content-Length", "0"),), body=b"")
    assert b"Content-Length" not in wire
    assert protocol.response_ended(1.0) is After.KEEP
