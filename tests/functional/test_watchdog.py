"""The watchdog on real wsgisvc-api process trees, both backends: a worker whose
loop stopped turning writes its stacks to the log and is replaced (stuck
holding the GIL, stuck with the GIL free), counted as ``timeout``, while its
sibling serves on; off, nothing is killed; a slow request logs its stack once
and is answered; a loaded worker with a short timeout is never taken for
stuck; a reload's draining worker is not either.

The stuck routes are ``_wsgi_testapp``'s: ``/test/hold-gil`` (a regular
expression backtracking for hours) and ``/test/block-loop`` (eventlet: an
unpatched sleep in the request; threads: a sleep in the selector thread).
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import signal
import threading

import pytest

from tests.functional._metrics_util import scrape
from tests.functional._wsgi_util import api_server
from tests.functional.test_metrics import METRICS_ON, metrics_port
from tests.functional.test_recycling import ClientLoop
from tests.helpers import wait_for

LOG = logging.getLogger(__name__)

STUCK = re.compile(
    r"worker (\d+) of osapi has not turned its loop for [\d.]+ s "
    r"\(osapi_worker_timeout = 2\): writing its stacks, then ending it"
)
ENDED = re.compile(
    r"worker (\d+) was ended: stuck for [\d.]+ s \(osapi_worker_timeout = 2\); "
    r"respawning in [\d.]+ s"
)
TIMEOUT = "osapi_worker_timeout = 2\n"
EXITS = "wsgisvc_worker_exits_total"


def _stacks(log: str, pid: int) -> str:
    """The stacks record the parent logged for worker ``pid``."""
    head = f"stacks of worker {pid} when it was found stuck"
    assert head in log, log[-3000:]
    record = log.split(head, 1)[1]
    return record.split(f"worker {pid} was ended", 1)[0]


def _in_background(api, path: str) -> threading.Thread:
    """GET ``path`` on a thread of its own (it may never be answered)."""

    def get():
        try:
            api.request(path, timeout=60)
        except (OSError, http.client.HTTPException):
            pass  # its worker was ended under it

    thread = threading.Thread(target=get, daemon=True)
    thread.start()
    return thread


def _stuck_worker(api, path: str, first: set[int]) -> int:
    """Send ``path``, wait for the parent to end the worker it stuck; its pid."""
    _in_background(api, path)
    pid = int(wait_for(lambda: ENDED.search(api.log()), timeout=60)[1])
    assert pid in first
    assert STUCK.search(api.log())[1] == str(pid)
    return pid


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["hold-gil", "block-loop"])
def test_a_stuck_worker_writes_its_stacks_and_is_replaced(tmp_path, backend, how):
    path = "/test/hold-gil" if how == "hold-gil" else "/test/block-loop?seconds=600"
    stuck_in = {
        "hold-gil": "hold_the_gil",
        "block-loop": "block_the_hub" if backend == "eventlet" else "selector_blocked",
    }[how]
    # Holding the GIL, only faulthandler writes, from C, and at most 100
    # threads: the threads backend's default pool (100) would push the
    # oldest pool threads, the one stuck among them, past that limit.
    pool = "wsgi_default_pool_size = 20\n"
    with api_server(
        tmp_path, workers=2, extra=TIMEOUT + METRICS_ON + pool, backend=backend
    ) as api:
        port = metrics_port(api.log)
        first = api.workers()
        pid = _stuck_worker(api, path, first)
        log = api.log()
        stacks = _stacks(log, pid)
        assert f" in {stuck_in}\n" in stacks, stacks
        if how == "hold-gil":  # from C: the watchdog thread could not run
            assert "Current thread 0x" in stacks
        else:  # from the watchdog thread, which got the GIL
            assert "Current thread 0x" not in stacks and "Thread 0x" in stacks
        if backend == "eventlet" and how == "block-loop":
            assert "Greenthread 0x" in stacks and " in _accept_loop\n" in stacks
        # its sibling served meanwhile and after; the slot has a new worker
        now = wait_for(lambda: len(w := api.workers()) == 2 and w, timeout=30)
        assert pid not in now and first - {pid} <= now
        assert {api.ping_pid() for _ in range(4)} <= now
        samples = wait_for(lambda: (s := scrape(port)).total(EXITS) and s)
        assert samples.total(EXITS, reason="timeout") == 1
        assert samples.total(EXITS) == 1
        LOG.info("%s on %s:\n%s", how, backend, log[STUCK.search(log).start() :])


@pytest.mark.timeout(120)
def test_off_a_blocked_loop_is_waited_for(tmp_path, backend):
    with api_server(tmp_path, workers=2, extra=METRICS_ON, backend=backend) as api:
        port = metrics_port(api.log)
        first = api.workers()
        # blocked 3 s, as long as a timeout of 2 would have allowed and more
        status, _, body = api.request("/test/block-loop?seconds=3")
        assert status == 200
        blocked = json.loads(body)["pid"]
        # serving again (on threads its selector sleeps after the answer)
        wait_for(lambda: api.ping_pid() == blocked, timeout=30)
        assert api.workers() == first
        assert "has not turned its loop" not in api.log()
        assert scrape(port).total(EXITS) == 0


@pytest.mark.timeout(120)
def test_a_slow_request_logs_its_stack_once_and_is_answered(tmp_path, backend):
    extra = "osapi_slow_request_seconds = 1\n" + TIMEOUT
    with api_server(tmp_path, workers=2, extra=extra, backend=backend) as api:
        first = api.workers()
        status, _, _ = api.request("/test/slow?ms=2500")
        assert status == 200
        log = api.log()
        lines = re.findall(
            r"request GET /test/slow\?ms=2500 has run for [\d.]+ s "
            r"\(osapi_slow_request_seconds = 1\), in pid \d+; its stack, most "
            r"recent call first:\n((?:  File .*\n)+)",
            log,
        )
        assert len(lines) == 1, log[-3000:]
        assert " in slow_app\n" in lines[0]
        assert api.workers() == first and "has not turned its loop" not in log


@pytest.mark.timeout(180)
def test_a_loaded_worker_with_a_short_timeout_is_never_ended(tmp_path, backend):
    extra = "osapi_worker_timeout = 1\n" + METRICS_ON
    with api_server(tmp_path, workers=2, extra=extra, backend=backend) as api:
        port = metrics_port(api.log)
        first = api.workers()
        with ClientLoop(api.port, keep_alive=4, fresh=4) as load:
            wait_for(lambda: len(load.results) >= 3000, timeout=120)
        LOG.info("%d requests on %s, timeout 1 s", len(load.results), backend)
        assert not load.failures(), load.failures()[:5]
        assert api.workers() == first
        assert "has not turned its loop" not in api.log()
        assert scrape(port).total(EXITS) == 0


@pytest.mark.timeout(120)
def test_a_draining_worker_is_not_stuck(tmp_path, backend):
    """A reload replaces the workers; one drains a 4 s request (its loop
    turns) past a 2 s timeout, and exits as replaced, not as stuck."""
    with api_server(
        tmp_path, workers=2, extra=TIMEOUT + METRICS_ON, backend=backend
    ) as api:
        port = metrics_port(api.log)
        marker = tmp_path / "in-flight"
        answered = []
        thread = threading.Thread(
            target=lambda: answered.append(
                api.request(f"/test/slow?ms=4000&marker={marker}")[0]
            )
        )
        thread.start()
        wait_for(marker.exists)
        draining = int(marker.read_text())
        api.proc.send_signal(signal.SIGHUP)
        thread.join(60)
        assert answered == [200]
        wait_for(lambda: f"replaced worker {draining} exited" in api.log())
        samples = wait_for(lambda: (s := scrape(port)).total(EXITS) >= 2 and s)
        assert samples.total(EXITS, reason="replaced") == samples.total(EXITS)
        assert "has not turned its loop" not in api.log()


@pytest.mark.timeout(60)
def test_a_single_process_says_the_timeout_does_nothing(tmp_path, backend):
    with api_server(tmp_path, workers=1, extra=TIMEOUT, backend=backend) as api:
        assert api.ping_pid() == api.pid
        assert (
            "osapi_worker_timeout does nothing in a single process: no parent "
            "replaces it (run at least 2 workers)"
        ) in api.log()
