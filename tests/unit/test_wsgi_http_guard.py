"""Bad input over a real socket: a clear status, the connection closed, the
application never called, and the server still serving afterwards."""

from __future__ import annotations

import time

import pytest

from tests.unit._http_cases import BAD_REQUESTS, HOST, request_bytes
from tests.unit._wsgi_inproc import (  # noqa: F401  (scheduler: a fixture)
    RecordingApp,
    connect,
    make_conf,
    raw,
    read_response,
    running,
    scheduler,
)
from wsgisvc import backend
from wsgisvc.http import guard as http_guard

GOOD = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"


CLOSING_GOOD = request_bytes(b"GET /ok HTTP/1.1", HOST, b"Connection: close")


@pytest.fixture(scope="module")
def server(scheduler):  # noqa: F811  (a server per scheduler, not one for both)
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
    """300 pipelined requests on A must not delay B's single request to the end.

    Under eventlet A's greenthread yields after each response (else B's never
    runs); under threads A goes back in line after each one (else, with one
    thread, B waits for all of A's)."""
    paths = []

    def app(environ, start_response):
        paths.append(environ["PATH_INFO"])
        time.sleep(0.001)  # a real sleep: B's bytes surely arrive during A's burst
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    pool_size = 1 if backend.NAME == "threading" else None
    with running(make_conf(), app, pool_size=pool_size) as srv:
        a, b = connect(srv), connect(srv)
        for sock in (a, b):  # both accepted and idle before the burst
            sock.sendall(GOOD)
            read_response(sock)
        a.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" * 300)
        b.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(b).startswith(b"HTTP/1.1 200")
        assert paths[2:].index("/b") < 299, "B waited for all of A's requests"
        a.close()
        b.close()


def test_shared_cases_use_the_real_header_cap():
    from tests.unit import _http_cases

    assert _http_cases.MAX_HEADERS == http_guard.MAX_HEADERS
