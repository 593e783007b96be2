"""Every malformed or ambiguous request against the real wsgisvc-api binary:
the documented status, the connection closed, and both workers still serving."""

from __future__ import annotations

import socket

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
