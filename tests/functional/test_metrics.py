"""Prometheus metrics of real wsgisvc-api and wsgisvc-worker process trees.

The parent serves ``/metrics`` on its own listener (``metrics_listen_port = 0``:
the port is read from its log); what it serves is scraped and parsed with
prometheus_client's own parser (``_metrics_util``).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import oslo_messaging as messaging
import psutil
import pytest

from tests.functional._metrics_util import scrape
from tests.functional._worker_util import worker_behind_a_db_proxy, worker_process
from tests.functional._wsgi_util import api_server, write_config
from tests.functional.test_api_startup import _start_and_fail
from tests.helpers import wait_for

METRICS_LISTENING = re.compile(
    r"metrics listening on http://127\.0\.0\.1:(\d+)/metrics"
)
METRICS_ON = "metrics_listen_port = 0\n"


def metrics_port(log: str) -> int:
    return int(wait_for(lambda: METRICS_LISTENING.search(log())).group(1))


def listening_ports(pid: int) -> set[int]:
    """TCP ports ``pid`` and its children listen on."""
    processes = [psutil.Process(pid), *psutil.Process(pid).children()]
    return {
        conn.laddr.port
        for process in processes
        for conn in process.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN
    }


@pytest.mark.timeout(120)
def test_rpc_method_labels_are_the_endpoints_methods_or_other(tmp_path, backend):
    """A sender names the method: 2,000 unknown ones made 2,000 label sets
    and an 8 MiB histogram file in one worker (issue 24). Unknown, private
    and hidden methods are counted as "other"."""
    with worker_process(
        tmp_path, workers=1, extra=METRICS_ON, backend=backend
    ) as worker:
        port = metrics_port(worker.log)
        client = worker.client()
        unknown = [f"no_such_method_{n}" for n in range(100)]
        for method in unknown:
            client.cast({}, method, server=worker.host)
        for method in ("_private", "init_host", "periodic_tasks"):
            with pytest.raises(messaging.RemoteError):
                client.call({}, method, server=worker.host)
        assert client.call({}, "echo", server=worker.host, payload=1)["payload"] == 1
        calls = len(unknown) + 4
        samples = wait_for(
            lambda: (s := scrape(port)).total("wsgisvc_rpc_calls_total") == calls and s
        )
    labels = {s.labels["method"] for s in samples.select("wsgisvc_rpc_calls_total")}
    assert labels == {"echo", "other"}
    assert samples.total("wsgisvc_rpc_calls_total", method="other") == calls - 1
    durations = samples.select("wsgisvc_rpc_call_duration_seconds_count")
    assert {s.labels["method"] for s in durations} == {"echo", "other"}


def _load(api, requests: int, clients: int) -> set[int]:
    """``requests`` GETs of /v1/ping over ``clients`` connections at once; the
    pids that answered."""

    def run(count: int) -> list[int]:
        return [api.ping_pid() for _ in range(count)]

    with ThreadPoolExecutor(clients) as pool:
        answers = pool.map(run, [requests // clients] * clients)
    return {pid for pids in answers for pid in pids}


@pytest.mark.timeout(120)
def test_request_counts_add_up_across_workers_with_a_latency_histogram(tmp_path):
    with api_server(tmp_path, workers=2, extra=METRICS_ON) as api:
        port = metrics_port(api.log)
        name = "wsgisvc_http_requests_total"
        # the readiness probes are counted after their answer: let them land
        before = wait_for(lambda: scrape(port).total(name, app="osapi"))
        wait_for(lambda: scrape(port).total(name, app="osapi") == before)
        answered_by = _load(api, requests=400, clients=8)
        assert api.request("/v1/no-such-thing")[0] == 404
        samples = wait_for(
            lambda: (s := scrape(port)).total(name, app="osapi") == before + 401 and s
        )
        in_flight = samples.pids("wsgisvc_http_requests_in_flight")
        workers = api.workers()
    assert answered_by == workers, "the load did not reach both workers"
    assert samples.total(name, method="GET", code="200") == before + 400
    assert samples.total(name, code="404") == 1
    histogram = "wsgisvc_http_request_duration_seconds"
    assert samples.total(f"{histogram}_count", app="osapi") == before + 401
    assert samples.total(f"{histogram}_bucket", app="osapi", le="+Inf") == before + 401
    assert 0 < samples.total(f"{histogram}_sum", app="osapi") < 401 * 1.0
    assert len(samples.select(f"{histogram}_bucket", app="osapi")) > 10
    assert in_flight == {str(pid) for pid in workers}
    assert samples.total("wsgisvc_pool_size") == 2 * 100


@pytest.mark.timeout(90)
def test_killed_workers_gauges_go_and_its_exit_is_counted(tmp_path):
    with api_server(tmp_path, workers=2, extra=METRICS_ON) as api:
        port = metrics_port(api.log)
        workers = api.workers()
        up = wait_for(
            lambda: (
                scrape(port).pids("wsgisvc_pool_size") == {str(pid) for pid in workers}
            )
        )
        assert up
        for _ in range(20):
            api.ping_pid()
        counted = wait_for(
            lambda: (
                scrape(port).total("wsgisvc_http_requests_total") >= 20
                and scrape(port).total("wsgisvc_http_requests_total")
            )
        )
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        new = wait_for(
            lambda: (
                len(api.workers()) == 2
                and victim not in api.workers()
                and api.workers()
            )
        )
        # The new worker writes its gauges, the parent its worker count: two
        # processes, so the scrape waits for both (CI once saw the gauges
        # before the count).
        samples = wait_for(
            lambda: (
                (s := scrape(port)).pids("wsgisvc_pool_size")
                == {str(pid) for pid in new}
                and s.total("wsgisvc_workers") == 2
                and s
            ),
            what="the new worker's gauges, without the killed one's, and 2 workers",
        )
        assert samples.total("wsgisvc_worker_exits_total", reason="killed") == 1
        # the killed worker's counts are still in the totals
        assert samples.total("wsgisvc_http_requests_total") >= counted


@pytest.mark.timeout(60)
def test_directory_is_private_and_goes_with_the_parent(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env_tmp = {"TMPDIR": str(tmpdir)}
    with api_server(tmp_path, workers=2, extra=METRICS_ON, env=env_tmp) as api:
        metrics_port(api.log)
        (directory,) = tmpdir.glob("wsgisvc-metrics-*")
        assert directory.stat().st_mode & 0o777 == 0o700
        api.proc.send_signal(signal.SIGTERM)
        assert api.proc.wait(timeout=30) == 0
    assert not list(tmpdir.glob("wsgisvc-metrics-*"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("on", [True, False], ids=["on", "off"])
def test_off_means_no_directory_no_listener_no_import(tmp_path, on):
    """Off: nothing of metrics exists. On, the same probes find each piece,
    so none of them can pass by looking in the wrong place."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir), "PYTHONPROFILEIMPORTTIME": "1"}
    extra = METRICS_ON if on else ""
    with api_server(tmp_path, workers=2, extra=extra, env=env) as api:
        assert api.request("/v1/ping")[0] == 200  # a request served, every hook ran
        ports = wait_for(
            lambda: len(listening_ports(api.pid)) >= 1 + on and listening_ports(api.pid)
        )
        directories = list(tmpdir.glob("wsgisvc-metrics-*"))
        log = api.log()
    imported = re.search(r"import time:.*\| +prometheus_client$", log, re.M)
    if on:
        assert len(ports) == 2 and api.port in ports
        assert directories and imported
    else:
        assert ports == {api.port}
        assert not directories
        assert not imported, "prometheus_client was imported with metrics off"


@pytest.mark.timeout(120)
def test_rpc_calls_are_counted_and_timed(tmp_path):
    with worker_process(tmp_path, workers=2, extra=METRICS_ON) as worker:
        port = metrics_port(worker.log)
        client = worker.client()
        # to this host's queue: the shared "worker" queue may have consumers
        # of other test runs (a queue is named by topic, whatever the exchange)
        for n in range(10):
            assert (
                client.call({}, "echo", server=worker.host, payload=n)["payload"] == n
            )
        with pytest.raises(messaging.RemoteError):
            client.call({}, "no_such_method", server=worker.host)
        samples = wait_for(
            lambda: (
                (s := scrape(port)).total(
                    "wsgisvc_rpc_calls_total", method="echo", outcome="ok"
                )
                == 10
                and s
            )
        )
    assert samples.total("wsgisvc_rpc_calls_total", outcome="error") == 1
    assert samples.total("wsgisvc_rpc_call_duration_seconds_count", method="echo") == 10
    assert samples.total("wsgisvc_rpc_call_duration_seconds_bucket", le="+Inf") == 11
    assert samples.select("wsgisvc_service_up")


@pytest.mark.timeout(180)
def test_heartbeat_failures_are_counted_and_service_up_follows(tmp_path):
    with worker_behind_a_db_proxy(tmp_path, METRICS_ON) as (worker, proxy):
        port = metrics_port(worker.log)
        pids = {str(pid) for pid in worker.workers()}

        def service_up():
            up = scrape(port).select("wsgisvc_service_up")
            return {s.labels["pid"]: s.value for s in up}

        wait_for(lambda: service_up() == dict.fromkeys(pids, 1.0), timeout=30)
        proxy.cut()
        wait_for(lambda: service_up() == dict.fromkeys(pids, 0.0), timeout=30)
        failures = scrape(port).total("wsgisvc_heartbeat_failures_total")
        assert failures >= 2  # one at least from each worker
        proxy.restore()
        wait_for(lambda: service_up() == dict.fromkeys(pids, 1.0), timeout=30)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_port_in_use_is_one_line_and_exit_1(tmp_path, workers):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        conf = write_config(tmp_path, workers, f"metrics_listen_port = {port}\n")
        line = _start_and_fail(tmp_path, conf)
    finally:
        taken.close()
    assert line == (
        f"wsgisvc-api cannot start: metrics cannot listen on 127.0.0.1:{port}: "
        "Address already in use"
    )


LISTENER = (
    "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); "
    "s.listen(); print(s.getsockname()[1], flush=True); time.sleep(30)"
)


@pytest.mark.timeout(30)
def test_listening_ports_sees_a_listener():
    """So that an answer without the metrics port means there is none."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(proc.stdout.readline())
        assert port in listening_ports(proc.pid)
    finally:
        proc.kill()
        proc.wait()
