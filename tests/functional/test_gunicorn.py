"""wsgisvc.gunicorn.Worker under a real gunicorn master: signals, limits, logs.

Every test starts ``python -m gunicorn`` as a subprocess in its own session on
``127.0.0.1:0`` and kills its process group afterwards (``_gunicorn_util``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.functional._gunicorn_util import (
    SAMPLE_PASTE,
    exited,
    gunicorn_master,
    run_gunicorn,
)
from tests.functional._metrics_util import read_directory
from tests.helpers import self_signed_cert, wait_for

# gunicorn's default access_log_format: h l u t "r" s b "f" "a".
ACCESS_LINE = re.compile(
    r'^127\.0\.0\.1 - - \[[^]]+\] "GET /pid HTTP/1\.1" 200 \d+ "-" "[^"]*"$', re.M
)


def _request_in_thread(master, path: str) -> dict:
    """Start GET ``path`` in a thread; the dict gets 'status' or 'error' at the end."""
    outcome: dict = {}

    def run():
        try:
            outcome["status"], outcome["body"] = master.get(path, timeout=60)
        except (OSError, http.client.HTTPException) as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def _wait_inflight(master, count: int = 1) -> None:
    wait_for(lambda: master.get("/stats")[1]["inflight"] >= count)


def _answering_pid_of_each_worker(master, path: str) -> dict[int, int]:
    """Ask ``path`` once per worker, the others stopped (SIGSTOP) meanwhile.

    Which worker accepts a connection is up to the kernel; pausing the others
    makes the answer deterministic. A worker paused for a moment misses no
    heartbeat that matters (``timeout`` is 30 s).
    """
    workers = wait_for(lambda: len(master.workers()) == 2 and master.workers())
    answers = {}
    for worker in workers:
        others = workers - {worker}
        for other in others:
            os.kill(other, signal.SIGSTOP)
        try:
            status, body = master.get(path)
        finally:
            for other in others:
                os.kill(other, signal.SIGCONT)
        assert status == 200, body
        answers[worker] = body["pid"]
    return answers


@pytest.mark.timeout(60)
def test_both_workers_serve_requests(tmp_path):
    with gunicorn_master(tmp_path, "-w", "2") as master:
        answers = _answering_pid_of_each_worker(master, "/sleep?ms=1")
        assert all(worker == pid for worker, pid in answers.items())
        log = master.log()
    # Importing the worker class goes through wsgisvc/__init__.py's filters.
    assert "Eventlet is deprecated" not in log
    assert "Using fork() is a bad idea" not in log
    assert "Traceback" not in log


@pytest.mark.timeout(60)
@pytest.mark.skipif(not SAMPLE_PASTE.exists(), reason="etc/api-paste.ini not there")
def test_serves_the_sample_api_with_both_workers(tmp_path):
    paste = f"{SAMPLE_PASTE}#osapi"
    with gunicorn_master(tmp_path, "-w", "2", paste=paste) as master:
        answers = _answering_pid_of_each_worker(master, "/v1/ping")
        assert all(worker == pid for worker, pid in answers.items())
        assert master.get("/v1/sleep?ms=10")[0] == 200
        assert master.get("/")[0] == 200


@pytest.mark.timeout(60)
def test_worker_is_patched_and_arbiter_is_not(tmp_path):
    report = tmp_path / "arbiter.txt"
    conf = tmp_path / "gunicorn_conf.py"
    conf.write_text(
        "import wsgisvc  # its warning filters first, as for any eventlet import\n"
        "import eventlet.patcher\n"
        "def when_ready(server):\n"
        f"    with open({str(report)!r}, 'w') as out:\n"
        "        out.write(repr(eventlet.patcher.is_monkey_patched('socket')))\n"
    )
    with gunicorn_master(tmp_path, "-w", "1", "-c", str(conf)) as master:
        status, patched = master.get("/patched")
        assert status == 200
        assert patched == {"socket": True, "thread": True, "time": True, "select": True}
        assert report.read_text() == "False"


@pytest.mark.timeout(60)
def test_preload_app_is_refused_with_a_clear_error(tmp_path):
    status, output = run_gunicorn(tmp_path, "--preload")
    assert status == 1, output
    assert "does not support preload_app (--preload)" in output


@pytest.mark.timeout(60)
def test_short_name_through_entry_point(tmp_path):
    worker = "egg:wsgisvc-server#eventlet"
    with gunicorn_master(tmp_path, "-w", "1", worker=worker) as master:
        assert master.get("/patched")[1]["socket"] is True
        assert "Using worker: egg:wsgisvc-server#eventlet" in master.log()


@pytest.mark.timeout(60)
def test_keep_alive_serves_many_requests_on_one_connection(tmp_path):
    with gunicorn_master(tmp_path, "-w", "1", "--keep-alive", "5") as master:
        conn = http.client.HTTPConnection("127.0.0.1", master.port, timeout=10)
        try:
            conn.request("GET", "/pid")
            first = conn.getresponse()
            first.read()
            sock = conn.sock
            for _ in range(5):
                conn.request("GET", "/pid")
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200
                assert resp.getheader("Connection", "").lower() != "close"
            assert conn.sock is sock, "the server closed the kept-alive connection"
        finally:
            conn.close()


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _segments_received(sock: socket.socket) -> int:
    """tcpi_segs_in of Linux's struct tcp_info: segments this socket received."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    return struct.unpack_from("I", info, 140)[0]


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="needs Linux TCP_INFO")
def test_small_response_arrives_in_one_segment(tmp_path):
    with gunicorn_master(tmp_path, "-w", "1") as master:
        conn = http.client.HTTPConnection("127.0.0.1", master.port, timeout=10)
        try:
            conn.request("GET", "/pid")
            conn.getresponse().read()
            before = _segments_received(conn.sock)
            for _ in range(20):
                conn.request("GET", "/pid")
                conn.getresponse().read()
            per_response = (_segments_received(conn.sock) - before) / 20
        finally:
            conn.close()
    # gunicorn writes the head and the body separately: two segments uncorked.
    assert per_response < 1.5, per_response


@pytest.mark.timeout(60)
def test_expect_100_continue_is_answered_before_the_body(tmp_path):
    waits = []
    with gunicorn_master(tmp_path, "-w", "1") as master:
        for _ in range(3):
            with socket.create_connection(
                ("127.0.0.1", master.port), timeout=10
            ) as sock:
                started = time.monotonic()
                sock.sendall(
                    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                    b"Expect: 100-continue\r\n\r\n"
                )
                # The client holds the body back until the server says continue.
                interim = _read_until(sock, b"\r\n\r\n")
                waits.append(time.monotonic() - started)
                assert interim.startswith(b"HTTP/1.1 100 Continue")
                sock.sendall(b"hello")
                response = _read_until(sock, b"}")
            assert response.startswith(b"HTTP/1.1 200 OK")
            assert response.endswith(b'{"length": 5}')
    # A 100 Continue left behind a TCP cork leaves only at the kernel's 200 ms
    # cork ceiling, every time; sent at once, it takes a few ms at most once.
    assert min(waits) < 0.15, waits


@pytest.mark.timeout(60)
def test_serves_a_unix_socket_too(tmp_path):
    path = tmp_path / "gunicorn.sock"
    with gunicorn_master(tmp_path, "-w", "1", "-b", f"unix:{path}") as master:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            sock.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            response = _read_until(sock, b"\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 200 OK")
        assert master.get("/pid")[0] == 200  # and TCP alongside


@pytest.mark.timeout(60)
def test_gunicorn_parser_limits_and_logs(tmp_path):
    with gunicorn_master(tmp_path, "-w", "1", "--limit-request-line", "200") as master:
        # gunicorn's answer: 414 since gunicorn 24, 400 before.
        assert master.get("/pid?" + "x" * 400)[0] in (400, 414)
        assert master.get("/error")[0] == 500
        # The worker lives on after both.
        assert master.get("/pid")[0] == 200
        log = wait_for(
            lambda: '"GET /pid HTTP/1.1" 200' in master.log() and master.log()
        )
    assert ACCESS_LINE.search(log), log
    assert "Error handling request" in log
    assert "RuntimeError: boom from the gunicorn test app" in log
    assert "Invalid request from ip=127.0.0.1: Request Line is too large" in log


@pytest.mark.timeout(60)
def test_file_wrapper_responses_go_out_through_sendfile(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 * 1024 * 1024))  # far beyond a socket buffer
    with gunicorn_master(tmp_path, "-w", "1") as master:
        conn = http.client.HTTPConnection("127.0.0.1", master.port, timeout=30)
        try:
            for path in (big, Path(__file__).parent / "_gunicorn_app.py"):
                conn.request("GET", "/file?" + urlencode({"path": str(path)}))
                resp = conn.getresponse()
                assert resp.status == 200
                assert resp.read() == path.read_bytes()  # same kept-alive connection
        finally:
            conn.close()


@pytest.mark.timeout(90)
def test_256_concurrent_requests_in_flight_on_one_worker(tmp_path):
    with gunicorn_master(tmp_path, "-w", "1", "--worker-connections", "300") as master:
        with ThreadPoolExecutor(256) as pool:
            results = list(
                pool.map(lambda _: master.get("/gather?n=256&ms=50"), range(256))
            )
        assert [status for status, _ in results] == [200] * 256
        assert master.get("/stats")[1]["peak"] >= 256


@pytest.mark.timeout(60)
def test_worker_connections_bounds_the_greenpool(tmp_path):
    with gunicorn_master(tmp_path, "-w", "1", "--worker-connections", "10") as master:
        with ThreadPoolExecutor(20) as pool:
            statuses = list(
                pool.map(lambda _: master.get("/sleep?ms=300")[0], range(20))
            )
        assert statuses == [200] * 20  # the other 10 waited in the backlog
        assert master.get("/stats")[1]["peak"] == 10


@pytest.mark.timeout(60)
def test_term_finishes_in_flight_request_and_master_exits_0(tmp_path):
    with gunicorn_master(tmp_path, "-w", "1", "--graceful-timeout", "20") as master:
        slow = _request_in_thread(master, "/sleep?ms=2000")
        _wait_inflight(master)
        master.signal(signal.SIGTERM)
        assert master.wait_exit(timeout=30) == 0
        slow["thread"].join(30)
        assert slow.get("status") == 200, slow
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", master.port), timeout=2)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT])
def test_int_and_quit_stop_now(tmp_path, signum):
    with gunicorn_master(tmp_path, "-w", "1", "--graceful-timeout", "60") as master:
        slow = _request_in_thread(master, "/sleep?ms=30000")
        _wait_inflight(master)
        master.signal(signum)
        master.wait_exit(timeout=15)  # far less than the 30 s request or 60 s grace
        slow["thread"].join(15)
        assert "status" not in slow, slow


@pytest.mark.timeout(90)
def test_hup_replaces_workers_without_failing_a_request(tmp_path):
    with gunicorn_master(tmp_path, "-w", "2") as master:
        old = wait_for(lambda: len(master.workers()) == 2 and master.workers())
        stop = threading.Event()
        results: list = []

        def client_loop():
            while not stop.is_set() and len(results) < 5000:
                try:
                    results.append(master.get("/sleep?ms=5", timeout=10)[0])
                except (OSError, http.client.HTTPException) as exc:
                    results.append(exc)

        clients = [threading.Thread(target=client_loop) for _ in range(4)]
        for client in clients:
            client.start()
        try:
            wait_for(lambda: len(results) > 20)
            master.signal(signal.SIGHUP)
            wait_for(
                lambda: len(master.workers()) == 2 and not master.workers() & old,
                timeout=30,
            )
            served = len(results)
            wait_for(lambda: len(results) > served + 20)
        finally:
            stop.set()
            for client in clients:
                client.join(30)
        failures = [r for r in results if r != 200]
        assert failures == []
        assert master.workers().isdisjoint(old)


@pytest.mark.timeout(60)
def test_usr1_reopens_the_access_log(tmp_path):
    access_log = tmp_path / "access.log"
    with gunicorn_master(tmp_path, "-w", "1", "--access-logfile", str(access_log)) as m:
        wait_for(lambda: access_log.exists() and access_log.read_text())
        access_log.rename(tmp_path / "access.log.1")  # what logrotate does
        m.signal(signal.SIGUSR1)

        def logged_to_new_file():
            assert m.get("/pid")[0] == 200
            return access_log.exists() and '"GET /pid ' in access_log.read_text()

        wait_for(logged_to_new_file)


@pytest.mark.timeout(60)
def test_workers_exit_when_the_master_is_killed(tmp_path):
    with gunicorn_master(tmp_path, "-w", "2") as master:
        workers = wait_for(lambda: len(master.workers()) == 2 and master.workers())
        master.signal(signal.SIGKILL)
        master.wait_exit(timeout=10)
        wait_for(lambda: all(exited(pid) for pid in workers), timeout=15)


@pytest.mark.timeout(60)
def test_ttin_then_ttou_change_the_worker_count(tmp_path):
    with gunicorn_master(tmp_path, "-w", "2") as master:
        wait_for(lambda: len(master.workers()) == 2)
        master.signal(signal.SIGTTIN)
        wait_for(lambda: len(master.workers()) == 3)
        # One signal at a time: the kernel merges a second one sent before the
        # master handled the first.
        master.signal(signal.SIGTTOU)
        wait_for(lambda: len(master.workers()) == 2)
        master.signal(signal.SIGTTOU)
        wait_for(lambda: len(master.workers()) == 1)
        assert master.get("/pid")[0] == 200


@pytest.mark.timeout(90)
def test_worker_blocked_past_timeout_is_replaced(tmp_path):
    with gunicorn_master(tmp_path, "-w", "1", "--timeout", "3") as master:
        (stuck,) = wait_for(lambda: len(master.workers()) == 1 and master.workers())
        blocked = _request_in_thread(master, "/block?s=60")
        wait_for(lambda: "WORKER TIMEOUT" in master.log(), timeout=30)
        wait_for(lambda: master.workers() and stuck not in master.workers(), timeout=30)
        status, pid = master.get("/pid")
        assert status == 200 and pid != stuck
        blocked["thread"].join(30)
        assert blocked.get("status") != 200, blocked


@pytest.mark.timeout(90)
def test_max_requests_recycles_workers_and_no_request_fails(tmp_path):
    extra = ("-w", "2", "--max-requests", "10", "--max-requests-jitter", "3")
    with gunicorn_master(tmp_path, *extra) as master:
        results = []
        for _ in range(80):
            results.append(master.get("/pid"))
        assert [status for status, _ in results] == [200] * 80
        pids = {pid for _, pid in results}
        assert len(pids) >= 6  # 80 requests over workers that each serve <= 13
        assert "Autorestarting worker after current request" in master.log()


@pytest.mark.timeout(60)
@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_tls_through_gunicorn_certfile_and_keyfile(tmp_path):
    cert, key = self_signed_cert(tmp_path, "cert", cn="127.0.0.1")
    tls = ("--certfile", str(cert), "--keyfile", str(key))
    with gunicorn_master(tmp_path, "-w", "1", *tls, plain_http=False) as master:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        conn = http.client.HTTPSConnection(
            "127.0.0.1", master.port, context=context, timeout=10
        )
        try:
            for _ in range(3):  # kept alive over TLS
                conn.request("GET", "/patched")
                resp = conn.getresponse()
                assert resp.status == 200
                assert json.loads(resp.read())["socket"] is True
        finally:
            conn.close()


@pytest.mark.timeout(90)
def test_request_metrics_from_every_worker_under_prometheus_multiproc_dir(tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    with gunicorn_master(tmp_path, "-w", "2", env=env) as master:
        name = "wsgisvc_http_requests_total"
        # counted after the answer went out: wait for the readiness probe's
        before = wait_for(lambda: read_directory(directory).total(name))
        answers = _answering_pid_of_each_worker(master, "/sleep?ms=1")
        for _ in range(20):
            assert master.get("/pid")[0] == 200
        assert master.get("/error")[0] == 500
        slow = _request_in_thread(master, "/sleep?ms=3000")
        samples = wait_for(
            lambda: (
                (s := read_directory(directory)).total(
                    "wsgisvc_http_requests_in_flight", app="gunicorn"
                )
                >= 1
                and s
            ),
            what="a sampled in-flight request",
        )
        slow["thread"].join(30)
        made = 2 + 20 + 1 + 1
        wait_for(lambda: read_directory(directory).total(name) >= before + made)
    after = read_directory(directory)
    assert after.total(name, app="gunicorn") == before + made
    assert after.total(name, method="GET", code="500") == 1
    assert after.total("wsgisvc_http_request_duration_seconds_count") == after.total(
        name
    )
    assert after.total("wsgisvc_http_request_duration_seconds_bucket", le="+Inf") > 0
    # every worker wrote its own counts, which the collector adds up
    for pid in answers:
        assert read_directory(directory, f"counter_{pid}.db").total(name) > 0
    assert samples.pids("wsgisvc_pool_size") >= {str(pid) for pid in answers}


# -- the accept policy and TLS wrap the three runtimes share ------------------


def _get_closing(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.timeout(60)
def test_out_of_descriptors_is_logged_once_and_every_client_served(tmp_path):
    """The shared policy (``listeners.AcceptErrors``): one line when accept()
    runs out of descriptors, one when it can again; no client is lost."""
    with gunicorn_master(tmp_path, "-w", "1", "--keep-alive", "60") as master:
        # Kept open until the end: its descriptor, freed, would end the streak.
        held = http.client.HTTPConnection("127.0.0.1", master.port, timeout=30)
        try:
            held.request("GET", "/exhaust?s=2")
            assert json.loads(held.getresponse().read()) > 0
            answers = [_get_closing(master.port) for _ in range(3)]
        finally:
            held.close()
        log = master.log()
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers), answers
    cannot = re.findall(r"\[ERROR\] gunicorn on http://\S+ cannot accept: .*", log)
    assert len(cannot) == 1, log
    assert (
        "[Errno 24] Too many open files; retrying every 0.5 s until it can"
        in (cannot[0])
    )
    assert len(re.findall(r"\[WARNING\] .* accepting connections again", log)) == 1


@pytest.mark.timeout(90)
def test_a_worker_whose_listener_broke_says_why_and_is_replaced(tmp_path):
    with gunicorn_master(tmp_path, "-w", "2") as master:
        first = wait_for(lambda: len(master.workers()) == 2 and master.workers())
        status, broken = master.get("/break-listener")
        assert status == 200 and broken in first

        def replaced():
            master.get("/pid")  # a connection for the broken worker to wake on
            workers = master.workers()
            return len(workers) == 2 and broken not in workers and workers

        wait_for(replaced, timeout=30, what=f"worker {broken} replaced")
        log = master.log()
    assert re.search(
        r"gunicorn cannot accept connections on http://\S+: "
        r"OSError\(22, 'Invalid argument'\); stopping this worker",
        log,
    ), log


@pytest.mark.timeout(60)
@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_a_failed_tls_handshake_is_logged_as_by_the_schedulers(tmp_path):
    """The line of ``sslutils.handshake_failed`` (tests/unit/test_wsgi_sslutils
    pins it for the schedulers); the worker serves on."""
    cert, key = self_signed_cert(tmp_path, "cert", cn="127.0.0.1")
    tls = ("--certfile", str(cert), "--keyfile", str(key), "--log-level", "debug")
    with gunicorn_master(tmp_path, "-w", "1", *tls, plain_http=False) as master:
        with socket.create_connection(("127.0.0.1", master.port), 30) as garbage:
            peer = f"127.0.0.1:{garbage.getsockname()[1]}"
            garbage.sendall(b"\x16\x03\x01\x00\x04junk and more junk\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):  # closed unread
                while garbage.recv(65536):
                    pass
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        conn = http.client.HTTPSConnection(
            "127.0.0.1", master.port, context=context, timeout=30
        )
        try:
            conn.request("GET", "/pid")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
        line = f"[DEBUG] gunicorn: TLS handshake with {peer} failed: "
        wait_for(lambda: line in master.log(), what="the handshake's line")
