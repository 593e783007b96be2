"""Bad input over a real socket: a clear status, the connection closed, the
application never called, and the server still serving afterwards."""

from __future__ import annotations

import pytest
from _wsgi_inproc import RecordingApp, connect, make_conf, raw, read_response, running

from wsgisvc import http_guard

GOOD = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"


def _req(*lines: bytes, body: bytes = b"") -> bytes:
    """A request from its request line and header lines, CRLF-joined."""
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


POST11, GET11, HOST = b"POST / HTTP/1.1", b"GET / HTTP/1.1", b"Host: x"
TE_CHUNKED, LAST_CHUNK = b"Transfer-Encoding: chunked", b"0\r\n\r\n"

BAD_REQUESTS = {
    "content_length_and_transfer_encoding": (
        _req(POST11, HOST, b"Content-Length: 5", TE_CHUNKED, body=LAST_CHUNK),
        b"400",
    ),
    "duplicate_content_length": (
        _req(POST11, HOST, b"Content-Length: 2", b"Content-Length: 2", body=b"ab"),
        b"400",
    ),
    "non_numeric_content_length": (_req(POST11, HOST, b"Content-Length: abc"), b"400"),
    "signed_content_length": (
        _req(POST11, HOST, b"Content-Length: +2", body=b"ab"),
        b"400",
    ),
    "listed_content_length": (
        _req(POST11, HOST, b"Content-Length: 2, 2", body=b"ab"),
        b"400",
    ),
    "transfer_encoding_gzip_chunked": (
        _req(POST11, HOST, b"Transfer-Encoding: gzip, chunked", body=LAST_CHUNK),
        b"400",
    ),
    "transfer_encoding_identity": (
        _req(POST11, HOST, b"Transfer-Encoding: identity"),
        b"400",
    ),
    "transfer_encoding_twice": (
        _req(POST11, HOST, TE_CHUNKED, TE_CHUNKED, body=LAST_CHUNK),
        b"400",
    ),
    "transfer_encoding_in_http10": (
        _req(b"POST / HTTP/1.0", TE_CHUNKED, body=LAST_CHUNK),
        b"400",
    ),
    "obsolete_line_folding": (_req(GET11, HOST, b"X-Folded: a", b" b"), b"400"),
    "cr_in_header_value": (_req(GET11, HOST, b"X-A: a\rb"), b"400"),
    "lf_in_header_value": (_req(GET11, HOST, b"X-A: a\nX-B: b"), b"400"),
    "nul_in_header_value": (_req(GET11, HOST, b"X-A: a\x00b"), b"400"),
    "space_in_header_name": (_req(GET11, HOST, b"X A: b"), b"400"),
    "space_before_colon": (_req(GET11, b"Host : x"), b"400"),
    "non_token_header_name": (_req(GET11, HOST, b"X(A): b"), b"400"),
    "empty_header_name": (_req(GET11, HOST, b": b"), b"400"),
    "http09_request_line": (_req(b"GET /"), b"400"),
    "garbage_request_line": (_req(b"\x16\x03\x01\x02\x00\x01\x00"), b"400"),
    "http2_version": (_req(b"GET / HTTP/2.0", HOST), b"505"),
    "missing_host_http11": (_req(GET11, b"X-A: b"), b"400"),
    "two_hosts": (_req(GET11, b"Host: a", b"Host: b"), b"400"),
    "request_line_too_long": (_req(b"GET /" + b"a" * 300 + b" HTTP/1.1", HOST), b"414"),
    "header_line_too_long": (_req(GET11, HOST, b"X-Big: " + b"b" * 300), b"431"),
    "too_many_headers": (
        _req(GET11, HOST, *(b"X-%d: v" % i for i in range(http_guard.MAX_HEADERS + 1))),
        b"431",
    ),
}
CLOSING_GOOD = _req(b"GET /ok HTTP/1.1", HOST, b"Connection: close")


@pytest.fixture(scope="module")
def server():
    app = RecordingApp()
    with running(make_conf(max_header_line=256), app) as srv:
        srv.test_app = app
        yield srv


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_is_rejected_and_server_lives_on(server, case):
    payload, status = BAD_REQUESTS[case]
    before = len(server.test_app.calls)

    answer = raw(server, payload)  # returns only once the server closed

    assert answer.startswith(b"HTTP/1.") and answer.split(b" ", 2)[1] == status, answer
    assert b"Connection: close" in answer or status == b"414"
    assert len(server.test_app.calls) == before, "the application saw a bad request"
    assert raw(server, CLOSING_GOOD).startswith(b"HTTP/1.1 200")


@pytest.mark.timeout(30)
def test_valid_requests_pass_with_their_bodies(server):
    """The strict parser still accepts what is valid: chunked, CL, tabs, obs-text."""
    chunked = (
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n"
        b"X-Tab:\tvalue\t\r\nX-Latin: caf\xe9\r\nConnection: close\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    answer = raw(server, chunked)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"abcde")
    environ = server.test_app.calls[-1]
    assert environ["HTTP_X_TAB"] == "value"
    assert environ["HTTP_X_LATIN"] == "caf\xe9"

    sized = b"POST /s HTTP/1.0\r\nContent-Length: 3\r\n\r\nxyz"
    assert raw(server, sized).endswith(b"xyz")


@pytest.mark.timeout(30)
def test_keep_alive_connection_serves_several_requests(server):
    sock = connect(server)
    try:
        for _ in range(3):
            sock.sendall(GOOD)
            assert read_response(sock).startswith(b"HTTP/1.1 200")
    finally:
        sock.close()


@pytest.mark.timeout(30)
def test_busy_connection_yields_to_others():
    """300 pipelined requests on A must not delay B's single request to the end."""
    with running(make_conf(), RecordingApp()) as srv:
        a, b = connect(srv), connect(srv)
        for sock in (a, b):  # both accepted and idle before the burst
            sock.sendall(GOOD)
            read_response(sock)
        a.sendall(GOOD * 300)
        b.sendall(GOOD)
        assert read_response(b).startswith(b"HTTP/1.1 200")
        a.setblocking(False)
        served_on_a = b""
        try:
            while chunk := a.recv(1 << 20):
                served_on_a += chunk
        except BlockingIOError:
            pass
        assert served_on_a.count(b"HTTP/1.1 200") < 300
        a.close()
        b.close()
