"""SIGHUP reloads of wsgisvc-api under a client loop, on both backends: a
broken configuration is refused whole (one line, the old one serves on), a
fixed one applies (in a single process too), a changed worker count applies,
a changed listening address says it needs a restart, and no request fails
meanwhile."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading

import pytest

from tests.functional._metrics_util import scrape
from tests.functional._wsgi_util import api_server
from tests.functional.test_metrics import METRICS_ON, metrics_port
from tests.helpers import wait_for

BROKEN = {
    "value": "osapi_workers = two\n",
    "parse": "osapi_workers 2\n",  # no '=': the file no longer parses
}
REPORT = re.compile(r" (\d+) WARNING wsgisvc\.report .*report requested \(SIGUSR2\)")
REFUSED = re.compile(r"reload refused: (.*); still serving the configuration loaded at")


@contextlib.contextmanager
def client_loop(api):
    """GET /test/pool on fresh connections until the block ends; yields the
    outcomes: (status, pid, pool size) or (the exception, None, None)."""
    results: list = []
    stop = threading.Event()

    def run():
        while not stop.is_set():
            try:
                status, _, body = api.request("/test/pool", timeout=20)
                answer = json.loads(body)
                results.append((status, answer["pid"], answer["pool_size"]))
            except (OSError, ValueError) as exc:
                results.append((exc, None, None))

    client = threading.Thread(target=run, daemon=True)
    client.start()
    try:
        wait_for(lambda: len(results) >= 20)
        yield results
        seen = len(results)
        wait_for(lambda: len(results) >= seen + 20)  # and after it all, too
    finally:
        stop.set()
        client.join(30)
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:5]


def _edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _answers(api) -> int | None:
    """The pool size /test/pool answers with; None while nothing answers."""
    try:
        return json.loads(api.request("/test/pool", timeout=5)[2])["pool_size"]
    except OSError:
        return None


def _refusals(api) -> list[str]:
    return [line for line in api.log().splitlines() if REFUSED.search(line)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("broken", list(BROKEN))
@pytest.mark.parametrize("workers", [2, 1], ids=["workers", "single-process"])
def test_a_broken_configuration_is_refused_and_the_old_one_serves_on(
    tmp_path, backend, workers, broken
):
    pool = "wsgi_default_pool_size = 5\n"
    with api_server(tmp_path, workers, extra=pool, backend=backend) as api:
        conf = tmp_path / "wsgisvc.conf"
        serving = api.workers() if workers > 1 else {api.pid}
        with client_loop(api) as results:
            _edit(conf, f"osapi_workers = {workers}\n", BROKEN[broken])
            _edit(conf, "pool_size = 5", "pool_size = 7")  # not applied either
            api.proc.send_signal(signal.SIGHUP)
            (line,) = wait_for(lambda: _refusals(api), timeout=30)
            seen = len(results)
            wait_for(lambda: len(results) >= seen + 20)
            assert {pid for _, pid, _ in results} == serving  # untouched
            assert {size for _, _, size in results} == {5}
            for pid in serving:  # a report reads every value: no traceback
                os.kill(pid, signal.SIGUSR2)
            wait_for(lambda: set(map(int, REPORT.findall(api.log()))) == serving)

        # fixed: it applies, and no request fails meanwhile (a single process
        # keeps its listener open while it restarts: they wait in its backlog)
        with client_loop(api) as results:
            _edit(conf, BROKEN[broken], f"osapi_workers = {workers}\n")
            api.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: results[-1][2] == 7, timeout=30)
        log = api.log()
    why = REFUSED.search(line).group(1)
    assert str(conf) in why
    if broken == "value":
        assert why.startswith(f"option osapi_workers: 'two' in {conf} is not valid")
    else:
        assert why.startswith(f"Failed to parse {conf}")
    assert len(_refusals(api)) == 1
    assert "Traceback (most recent call last)" not in log
    assert "reload: wsgi_default_pool_size: 5 -> 7" in log


@pytest.mark.timeout(120)
def test_a_reload_applies_a_changed_worker_count(tmp_path, backend):
    with api_server(tmp_path, workers=2, backend=backend) as api:
        conf = tmp_path / "wsgisvc.conf"
        with client_loop(api):
            for old, new in ((2, 3), (3, 1)):
                _edit(conf, f"osapi_workers = {old}", f"osapi_workers = {new}")
                before = api.workers()
                api.proc.send_signal(signal.SIGHUP)
                wait_for(
                    lambda: (w := api.workers()) and not w & before and len(w) == new,  # noqa: B023
                    timeout=30,
                )
                wait_for(lambda: f"configuration reloaded; {new} worker" in api.log())  # noqa: B023
        assert "reload: osapi_workers: 2 -> 3" in api.log()
        assert "reload: osapi_workers: 3 -> 1" in api.log()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("workers", [2, 1], ids=["workers", "single-process"])
def test_a_changed_listening_address_says_it_needs_a_restart(
    tmp_path, backend, workers
):
    with api_server(tmp_path, workers, backend=backend) as api:
        conf = tmp_path / "wsgisvc.conf"
        # a single process stops serving while it restarts: no client loop
        with client_loop(api) if workers > 1 else contextlib.nullcontext():
            _edit(conf, "osapi_listen_port = 0", "osapi_listen_port = 1")
            api.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "need a restart" in api.log(), timeout=30)
        wait_for(lambda: _answers(api), timeout=30)  # where it listened before
        line = next(x for x in api.log().splitlines() if "need a restart" in x)
    assert line.endswith(
        "reload: osapi_listen = 127.0.0.1, osapi_listen_port = 1 need a restart: "
        f"osapi still listens on http://127.0.0.1:{api.port}"
    )


@pytest.mark.timeout(120)
def test_new_workers_after_a_reload_do_not_say_the_service_is_down(tmp_path, backend):
    """The parent keeps the API's row; a worker forked after its first
    heartbeat carried the parent's service_up into its own file, at 0."""
    with api_server(tmp_path, workers=2, extra=METRICS_ON, backend=backend) as api:
        port = metrics_port(api.log)
        wait_for(lambda: scrape(port).select("wsgisvc_service_up"), timeout=30)
        old = api.workers()
        api.proc.send_signal(signal.SIGHUP)
        new = wait_for(
            lambda: (w := api.workers()) and not w & old and len(w) == 2 and w,
            timeout=30,
        )
        # the new workers' own gauges: written, so any value they carry is too
        wait_for(
            lambda: scrape(port).pids("wsgisvc_pool_size") == {str(p) for p in new},
            timeout=30,
        )
        up = {
            s.labels["pid"]: s.value for s in scrape(port).select("wsgisvc_service_up")
        }
    assert up == {str(api.pid): 1.0}
