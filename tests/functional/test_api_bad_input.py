"""Every malformed or ambiguous request against the real wsgisvc-api binary:
the documented status, the connection closed, and both workers still serving."""

from __future__ import annotations

import socket
import urllib.parse

import pytest

from tests.functional._wsgi_util import BACKENDS, api_server
from tests.unit._http_cases import BAD_BODIES, BAD_REQUESTS, HOST, request_bytes


@pytest.fixture(scope="module", params=BACKENDS)
def api(tmp_path_factory, request):
    with api_server(
        tmp_path_factory.mktemp("api"),
        workers=2,
        extra="max_header_line = 256\n",
        backend=request.param,
    ) as server:
        yield server


def _marker_request(marker, method_sp: bytes = b"GET ") -> bytes:
    """A request for /test/slow that creates the file ``marker`` if the app
    is ever called for it; ``method_sp`` starts its request line."""
    target = b"/test/slow?marker=" + urllib.parse.quote(str(marker)).encode()
    return request_bytes(method_sp + target + b" HTTP/1.1", HOST)


def _raw(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        data = b""
        while chunk := sock.recv(65536):  # until the server closes
            data += chunk
        return data


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_input_is_rejected_by_the_binary(api, case):
    payload, status = BAD_REQUESTS[case]
    workers = api.workers()

    answer = _raw(api.port, payload)

    assert answer.split(b" ", 2)[1] == status, answer
    assert api.request("/v1/ping")[0] == 200
    assert api.workers() == workers, "a worker died on bad input"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_malformed_chunked_body_to_the_sample_api_is_400(api, case):
    head = request_bytes(
        b"POST /v1/echo HTTP/1.1",
        HOST,
        b"Content-Type: application/json",
        b"Transfer-Encoding: chunked",
    )
    following = b"GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n"  # never a trailer
    answer = _raw(api.port, head + BAD_BODIES[case] + following)
    assert answer.split(b" ", 2)[1] == b"400", answer
    assert b"Connection: close" in answer and answer.count(b"HTTP/1.1") == 1
    assert api.request("/v1/ping")[0] == 200


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", BACKENDS)
def test_slow_client_is_cut_after_the_header_timeout(tmp_path, backend):
    with api_server(
        tmp_path, workers=1, extra="wsgi_header_timeout = 1\n", backend=backend
    ) as api:
        with socket.create_connection(("127.0.0.1", api.port), timeout=15) as sock:
            sock.sendall(b"GET /v1/ping HTTP/1.1\r\n")  # and nothing more
            assert sock.recv(100) == b""  # closed by the server, not by timeout
        assert api.request("/v1/ping")[0] == 200


# Issue 19's framing defects, through the binary (tests/unit/
# test_wsgi_http_hardening.py has them in-process): a request that closes the
# connection, with another one behind it in the same write.
CLOSING = {
    "http11-close": request_bytes(b"GET /v1/ping HTTP/1.1", HOST, b"Connection: close"),
    "http10": request_bytes(b"GET /v1/ping HTTP/1.0"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("first", sorted(CLOSING))
def test_a_request_after_a_closing_one_is_ignored(api, tmp_path, first):
    """RFC 9112 9.6: serve the closing request, close, ignore what follows
    (it was answered 400, the valid request with it)."""
    workers = api.workers()
    ignored = tmp_path / "ignored"

    answer = _raw(api.port, CLOSING[first] + _marker_request(ignored))

    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert answer.count(b"HTTP/1.1 ") == 1, answer  # then closed, nothing more
    assert not ignored.exists(), "the request after the closing one was served"
    assert api.request("/v1/ping")[0] == 200
    assert api.workers() == workers


@pytest.mark.timeout(60)
def test_a_request_line_with_two_spaces_is_400_and_what_follows_is_not_served(
    api, tmp_path
):
    """`GET  /path HTTP/1.1` was served, and the request after it too; RFC
    9112 section 3 allows one SP: 400, close, serve neither."""
    workers = api.workers()
    malformed, following = tmp_path / "malformed", tmp_path / "following"

    answer = _raw(
        api.port,
        _marker_request(malformed, b"GET  ") + _marker_request(following),
    )

    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert b"Connection: close" in answer and answer.count(b"HTTP/1.1 ") == 1
    assert not malformed.exists() and not following.exists()
    assert api.request("/v1/ping")[0] == 200
    assert api.workers() == workers
