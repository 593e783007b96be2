"""What the request metrics of a real wsgisvc-api count beyond served requests:
refusals, and the wait for a request slot.

One process (``osapi_workers = 1``) with metrics on, on each backend; the
scrape is that process's own metrics listener.
"""

from __future__ import annotations

import socket
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.functional._metrics_util import scrape
from tests.functional._wsgi_util import api_server
from tests.functional.test_metrics import METRICS_ON, metrics_port
from tests.helpers import wait_for

REQUESTS = "wsgisvc_http_requests_total"
DURATION = "wsgisvc_http_request_duration_seconds"


def settled(port: int, name: str) -> float:
    """``name``'s total once the readiness probes' counts have landed."""
    before = wait_for(lambda: scrape(port).total(name, app="osapi"))
    wait_for(lambda: scrape(port).total(name, app="osapi") == before)
    return before


def refused(port: int, request: bytes) -> bytes:
    """Send ``request`` on a connection of its own; what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.timeout(90)
def test_refused_requests_are_counted_with_their_status(tmp_path, backend):
    """A head the parser cannot read (no method: "other") and one the guard
    refuses (an ambiguous Host, after a GET) are requests answered 400."""
    with api_server(tmp_path, workers=1, extra=METRICS_ON, backend=backend) as api:
        port = metrics_port(api.log)
        before = settled(port, REQUESTS)
        garbage = refused(api.port, b"\x01\x02 nonsense\r\n\r\n")
        two_hosts = refused(api.port, b"GET /v1/ping HTTP/1.1\r\nHost: a, b\r\n\r\n")
        samples = wait_for(
            lambda: (
                (s := scrape(port)).total(REQUESTS, app="osapi") == before + 2 and s
            ),
            what="both refusals counted",
        )
    assert garbage.startswith(b"HTTP/1.1 400") and two_hosts.startswith(b"HTTP/1.1 400")
    assert samples.total(REQUESTS, app="osapi", code="400") == 2
    assert samples.total(REQUESTS, code="400", method="other") == 1
    assert samples.total(REQUESTS, code="400", method="GET") == 1


APP_SECONDS = 3.0  # each slow request's own time in the application
BOUND = "5.0"  # a histogram bucket between one app time and two


@pytest.mark.timeout(120)
def test_the_duration_includes_the_wait_for_a_slot(tmp_path, backend):
    """With one slot, a request that comes while another is served waits for
    it: its duration is its wait plus its own time, over BOUND seconds, while
    the first stays under."""
    extra = METRICS_ON + "wsgi_default_pool_size = 1\n"
    with api_server(tmp_path, workers=1, extra=extra, backend=backend) as api:
        port = metrics_port(api.log)
        count = settled(port, f"{DURATION}_count")
        under = scrape(port).total(f"{DURATION}_bucket", app="osapi", le=BOUND)
        marker = tmp_path / "first-in-its-slot"
        slow = f"/test/slow?ms={APP_SECONDS * 1000:.0f}"
        with ThreadPoolExecutor(2) as clients:
            quoted = urllib.parse.quote(str(marker))
            first = clients.submit(api.request, f"{slow}&marker={quoted}")
            wait_for(marker.exists, what="the first slow request in its slot")
            second = clients.submit(api.request, slow)
            statuses = [first.result()[0], second.result()[0]]
        samples = wait_for(
            lambda: (
                (s := scrape(port)).total(f"{DURATION}_count", app="osapi") == count + 2
                and s
            ),
            what="both slow requests observed",
        )
    assert statuses == [200, 200]
    # the first under BOUND, the second (wait and app time) over it
    assert samples.total(f"{DURATION}_bucket", app="osapi", le=BOUND) == under + 1
    assert samples.total(f"{DURATION}_sum", app="osapi") > 3 * APP_SECONDS * 0.9
