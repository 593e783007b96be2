"""Live worker count (SIGTTIN/SIGTTOU), the report on demand (SIGUSR2), and the
log lines an operator reads around them, on real wsgisvc-api process trees."""

from __future__ import annotations

import os
import re
import signal
import threading

import pytest

from tests.functional._metrics_util import scrape
from tests.functional._wsgi_util import api_server
from tests.functional.test_metrics import METRICS_ON, metrics_port
from tests.helpers import alive, wait_for

REPORT = re.compile(r" (\d+) WARNING wsgisvc\.report .*report requested \(SIGUSR2\)")


def _lines(api, text: str) -> list[str]:
    return [line for line in api.log().splitlines() if text in line]


def _workers_metric(port: int) -> float:
    return scrape(port).total("wsgisvc_workers")


@pytest.mark.timeout(120)
def test_ttin_then_ttou_change_the_worker_count_and_the_metrics_follow(
    tmp_path, backend
):
    with api_server(tmp_path, workers=2, extra=METRICS_ON, backend=backend) as api:
        port = metrics_port(api.log)
        first = api.workers()
        os.kill(api.pid, signal.SIGTTIN)
        three = wait_for(lambda: len(api.workers()) == 3 and api.workers())
        assert first < three
        wait_for(lambda: _workers_metric(port) == 3)
        wait_for(lambda: scrape(port).pids("wsgisvc_pool_size") == set(map(str, three)))
        assert len(_lines(api, "got SIGTTIN")) == 1
        assert "osapi now runs 3 workers" in _lines(api, "got SIGTTIN")[0]

        os.kill(api.pid, signal.SIGTTOU)
        two = wait_for(lambda: len(api.workers()) == 2 and api.workers())
        (retired,) = three - two
        wait_for(lambda: _workers_metric(port) == 2)
        samples = wait_for(
            lambda: (
                (s := scrape(port)).total(
                    "wsgisvc_worker_exits_total", reason="retired"
                )
                == 1
                and s
            )
        )
        assert str(retired) not in samples.pids("wsgisvc_pool_size")
        (line,) = _lines(api, "got SIGTTOU")
        assert f"osapi now runs 2 workers; retiring worker {retired}" in line
        assert _lines(api, f"{retired} ") and not _lines(api, "respawning")

        for seen in (2, 3):  # down to one, and never below (one at a time:
            os.kill(api.pid, signal.SIGTTOU)  # the kernel merges a pending pair)
            wait_for(lambda: len(_lines(api, "got SIGTTOU")) == seen)  # noqa: B023
        wait_for(lambda: len(api.workers()) == 1)
        assert "osapi now runs 1 worker; retiring" in _lines(api, "got SIGTTOU")[1]
        assert "osapi stays at 1 worker" in _lines(api, "got SIGTTOU")[-1]
        assert api.ping_pid() in api.workers()

        os.kill(api.pid, signal.SIGHUP)  # a reload goes back to the configured 2
        wait_for(lambda: len(api.workers()) == 2, timeout=30)
        samples = wait_for(
            lambda: (
                (s := scrape(port)).total("wsgisvc_workers") == 2
                and s.total("wsgisvc_worker_exits_total", reason="replaced") == 1
                and s
            )
        )
        assert samples.total("wsgisvc_reloads_total") == 1
        assert samples.total("wsgisvc_worker_exits_total", reason="retired") == 2
        assert samples.total("wsgisvc_worker_exits_total") == 3  # none unasked


@pytest.mark.timeout(120)
def test_sighup_says_what_it_does_and_when_it_is_done(tmp_path):
    with api_server(tmp_path, workers=2) as api:
        old = api.workers()
        os.kill(api.pid, signal.SIGHUP)
        wait_for(lambda: _lines(api, "configuration reloaded"), timeout=30)
        new = api.workers()
        api.proc.send_signal(signal.SIGTERM)
        assert api.proc.wait(timeout=30) == 0
        log = api.log()
    assert "reloading configuration; replacing 2 workers" in log
    assert log.index("replacing 2 workers") < log.index("configuration reloaded")
    for pid in old:  # a replaced worker says so, not just "got SIGTERM"
        (line,) = [x for x in log.splitlines() if f"pid {pid} " in x and "INFO" in x]
        assert "is being replaced: stopping gracefully" in line
    # the parent serves nothing, so it says nothing of connections; every
    # worker, replaced or stopped, does
    said = [x for x in log.splitlines() if "stopped accepting" in x]
    assert {int(x.split()[2]) for x in said} == old | new
    assert "doc/source" not in log  # the start line points at no source path


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [2, 1], ids=["workers", "single-process"])
def test_sigusr2_report_shows_each_greenthread_and_serving_goes_on(
    tmp_path, workers, backend
):
    with api_server(tmp_path, workers=workers, backend=backend) as api:
        marker = tmp_path / "in-flight"
        slow: dict = {}

        def slow_request():
            slow["status"] = api.request(f"/test/slow?ms=3000&marker={marker}")[0]

        request = threading.Thread(target=slow_request)
        request.start()
        serving = int(wait_for(lambda: marker.exists() and marker.read_text()))
        os.kill(serving, signal.SIGUSR2)
        wait_for(lambda: str(serving) in REPORT.findall(api.log()))
        assert api.ping_pid()  # still serving, during the report's request too
        request.join(30)
        assert slow["status"] == 200
        if workers > 1:
            os.kill(api.pid, signal.SIGUSR2)  # the parent writes its own
            wait_for(lambda: str(api.pid) in REPORT.findall(api.log()))
            assert alive(api.pid) and len(api.workers()) == workers
            parents = api.log()[api.log().index(f"{api.pid} WARNING wsgisvc.report") :]
            assert f"{'Workers': ^64}" in parents
            assert "osapi: 2 of 2 configured; pids " in parents
        log = api.log()
    report = log[log.index("report requested (SIGUSR2)") :]
    parents_at = report.find(f"{api.pid} WARNING wsgisvc.report")
    served_by = report if parents_at < 0 else report[:parents_at]
    assert f"{'Workers': ^64}" not in served_by  # the parent's section is its own
    sections = ["Threads", "Configuration", "osapi server"]
    if backend == "eventlet":
        sections.append("Green Threads")
    for section in sections:
        assert f"{section: ^64}" in report
    assert "in slow_app" in report  # the request in flight, where it waits
    # and the greenthread (eventlet) or the selector thread (threads) accepting
    assert ("_accept_loop" if backend == "eventlet" else "in _loop") in report


@pytest.mark.timeout(60)
def test_ttin_and_ttou_in_a_single_process_are_ignored(tmp_path, backend):
    """Without them handled, either signal would stop (suspend) the process."""
    with api_server(tmp_path, workers=1, backend=backend) as api:
        for signo in (signal.SIGTTIN, signal.SIGTTOU):
            os.kill(api.pid, signo)
            name = signal.Signals(signo).name
            wait_for(lambda: _lines(api, f"got {name}: ignored (no workers here)"))  # noqa: B023
        assert api.ping_pid() == api.pid
