"""graceful_drain_delay on a real wsgisvc-api, both backends: after SIGTERM the
process serves on, its healthcheck saying 503, for the delay; then it stops as
without one (listener closed, in-flight work finished, exit 0)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.functional._wsgi_util import api_server
from tests.helpers import wait_for

DELAY = 4  # room for a loaded machine to see the 503, then 200s, within it


@pytest.mark.timeout(90)
@pytest.mark.parametrize("workers", [1, 2], ids=["single-process", "workers"])
def test_healthcheck_is_503_during_the_delay_then_the_socket_closes(
    tmp_path, backend, workers
):
    extra = f"graceful_drain_delay = {DELAY}\n"
    with api_server(tmp_path, workers=workers, extra=extra, backend=backend) as api:
        assert api.request("/healthcheck")[0] == 200
        sent = time.monotonic()
        api.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: api.request("/healthcheck", timeout=5)[0] == 503, timeout=5)
        answers = []
        while time.monotonic() - sent < DELAY - 0.5:
            answers.append(api.request("/v1/ping", timeout=5)[0])
        assert answers and set(answers) == {200}
        status = api.proc.wait(timeout=30)
        stopped = time.monotonic() - sent
        with pytest.raises(ConnectionRefusedError):
            api.request("/v1/ping", timeout=5)
    assert status == 0, api.log()
    assert DELAY <= stopped <= DELAY + 5, stopped
    assert "graceful_drain_delay" in api.log()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("workers", [1, 2], ids=["single-process", "workers"])
def test_sigint_during_the_delay_stops_at_once_and_sigterm_is_ignored(
    tmp_path, backend, workers
):
    extra = "graceful_drain_delay = 30\n"
    with api_server(tmp_path, workers=workers, extra=extra, backend=backend) as api:
        api.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: api.request("/healthcheck", timeout=5)[0] == 503, timeout=5)
        api.proc.send_signal(signal.SIGTERM)  # a second one changes nothing
        wait_for(lambda: "got SIGTERM while stopping: ignored" in api.log())
        assert api.request("/v1/ping", timeout=5)[0] == 200
        sent = time.monotonic()
        api.proc.send_signal(signal.SIGINT)
        status = api.proc.wait(timeout=30)
        assert time.monotonic() - sent < 5
        assert not api.workers()
    assert status == 1, api.log()
