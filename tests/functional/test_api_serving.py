"""wsgisvc-api serving, on both backends: the port it reports, its workers, TLS,
and slow clients beside a normal one."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time

import pytest

from tests.functional._wsgi_util import BACKENDS, api_server
from tests.helpers import self_signed_cert, wait_for


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.mark.timeout(60)
def test_port_zero_is_reported_and_reachable(tmp_path, backend):
    with api_server(tmp_path, workers=1, backend=backend) as api:
        assert api.port > 0
        assert f"osapi listening on http://127.0.0.1:{api.port}" in api.log()
        status, headers, body = api.request("/")
        assert status == 200
        assert json.loads(body)["versions"][0]["id"] == "v1.0"
        assert api.request("/healthcheck")[0] == 200


@pytest.mark.timeout(60)
def test_two_workers_both_serve(tmp_path, backend):
    with api_server(tmp_path, workers=2, backend=backend) as api:
        workers = api.workers()
        assert len(workers) == 2
        seen: set[int] = set()

        def both_answered():
            seen.add(api.ping_pid())
            return seen == workers

        wait_for(both_answered, timeout=30)


@pytest.mark.timeout(60)
def test_sample_api_limits_through_the_binary(tmp_path, backend):
    extra = "[oslo_middleware]\nmax_request_body_size = 1000\n"
    with api_server(tmp_path, workers=1, extra=extra, backend=backend) as api:
        assert api.request("/v1/echo", "POST", b"[" + b"1," * 400 + b"1]")[0] == 200
        status, _, body = api.request("/v1/echo", "POST", b"x" * 1001)
        assert status == 413 and json.loads(body)["overLimit"]["code"] == 413
        chunks = iter([b"x" * 600, b"x" * 600])
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
        conn.request(
            "POST",
            "/v1/echo",
            body=chunks,
            encode_chunked=True,
            headers={"Transfer-Encoding": "chunked"},
        )
        assert conn.getresponse().status == 413
        conn.close()


@pytest.mark.timeout(90)
def test_tls_round_trip_through_the_binary(tmp_path, backend):
    self_signed_cert(tmp_path, "server", cn="127.0.0.1", ip="127.0.0.1")
    extra = (
        "osapi_use_ssl = true\n[ssl]\n"
        f"cert_file = {tmp_path / 'server.pem'}\nkey_file = {tmp_path / 'server.key'}\n"
    )
    with api_server(tmp_path, workers=2, extra=extra, backend=backend) as api:
        assert api.scheme == "https"
        context = ssl.create_default_context(cafile=str(tmp_path / "server.pem"))

        def tls_ping():
            conn = http.client.HTTPSConnection(
                "127.0.0.1", api.port, context=context, timeout=10
            )
            try:
                conn.request("GET", "/v1/ping")
                response = conn.getresponse()
                return response.status, json.loads(response.read())
            except OSError:
                return None
            finally:
                conn.close()

        status, document = wait_for(tls_ping, timeout=30)
        assert status == 200 and document["ping"] == "pong"
        # Keep-alive over TLS: the connection goes back to waiting for its
        # next head after each answer (its records read until none is left).
        conn = http.client.HTTPSConnection(
            "127.0.0.1", api.port, context=context, timeout=10
        )
        for _ in range(20):
            conn.request("GET", "/v1/ping")
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read())
        conn.close()


@pytest.mark.timeout(60)
def test_half_sent_heads_beyond_the_pool_leave_a_normal_request_served(
    tmp_path, backend
):
    """The slow-client probe: 3 x the pool in connections holding half a request
    head, held open; a normal request is still answered within 1 s."""
    extra = "wsgi_default_pool_size = 4\n"
    with api_server(tmp_path, workers=1, extra=extra, backend=backend) as api:
        slow = []
        try:
            for _ in range(12):
                sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
                sock.sendall(b"GET /v1/ping HTTP/1.1\r\nHost: x\r\nX-Half: ")
                slow.append(sock)
            started = time.monotonic()
            status = api.request("/v1/ping", timeout=5)[0]
            elapsed = time.monotonic() - started
        finally:
            for sock in slow:
                sock.close()
    assert status == 200
    assert elapsed < 1.0, f"{backend}: the normal request took {elapsed:.3f} s"
    print(f"slow-client probe ({backend}): normal request in {elapsed * 1000:.1f} ms")
