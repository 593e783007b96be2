"""The workloads of issue 6: W1-W4 (wrk), S (cold start), R (SIGHUP), G (SIGTERM)
and M (memory after W1).

Each ``run_*`` function gets a server that already answers and returns a flat
dict of figures; the caller starts a fresh server for every workload group so
that one workload's leftovers (memory, half-closed sockets) do not bias the next.
"""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import wrk
from bench.servers import RunningServer

ECHO_BODY_BYTES = 16 * 1024
G_IN_FLIGHT = 16  # 1 s requests in flight when SIGTERM arrives
G_SLEEP_MS = 1000
G_BACKGROUND_CONNECTIONS = 64  # W3-shaped load around them; fits every pool
R_HUP_FRACTION = 0.3  # SIGHUP at 3 s of a 10 s run

SLOW_CLIENTS = 2 * 2 * 100  # twice the total pool: 2 workers x 100 slots
SLOW_BYTE_INTERVAL = 1.0  # each slow client sends one byte of its head per second

ALL = ["W1", "W2", "W3", "W4", "SC", "S", "R", "G", "M"]
DESCRIPTIONS = {
    "W1": "GET /v1/ping, keep-alive, 64 connections",
    "W2": "GET /v1/ping, Connection: close, 64 connections",
    "W3": "GET /v1/sleep?ms=20, 256 connections",
    "W4": "POST /v1/echo, 16 KiB JSON body, 64 connections",
    "SC": f"W1 beside {SLOW_CLIENTS} connections trickling their request head "
    f"(a byte per {SLOW_BYTE_INTERVAL:g} s)",
    "S": "cold start: seconds from exec to the first 200",
    "R": "SIGHUP at 30% of a W1 run",
    "G": f"SIGTERM with {G_IN_FLIGHT} x {G_SLEEP_MS} ms requests in flight "
    f"(+ W3-shaped load, {G_BACKGROUND_CONNECTIONS} connections)",
    "M": "RSS / PSS / peak RSS summed over the server's processes, and the "
    "master's own PSS, after W1",
}


@dataclass
class Settings:
    duration: float = 10.0
    warmup: float = 1.0
    wrk_threads: int = 2
    body_file: Path | None = None


def write_echo_body(path: Path, size: int = ECHO_BODY_BYTES) -> Path:
    """A JSON document of exactly ``size`` bytes: a list of small records, so
    the echo endpoint parses real structure, not one long string."""
    records = []
    while len(json.dumps({"items": records})) < size - 64:
        n = len(records)
        records.append({"id": n, "name": f"item-{n}", "tags": ["a", "b"], "ok": True})
    doc = {"items": records, "pad": ""}
    doc["pad"] = "x" * (size - len(json.dumps(doc)))
    path.write_text(json.dumps(doc))
    assert path.stat().st_size == size
    return path


def loads(settings: Settings) -> dict[str, wrk.Load]:
    return {
        "W1": wrk.Load("/v1/ping", 64),
        "W2": wrk.Load("/v1/ping", 64, headers={"Connection": "close"}),
        "W3": wrk.Load("/v1/sleep?ms=20", 256),
        "W4": wrk.Load(
            "/v1/echo",
            64,
            method="POST",
            headers={"Content-Type": "application/json"},
            body_file=settings.body_file,
        ),
    }


def warm_up(server: RunningServer, load: wrk.Load, settings: Settings) -> None:
    """An unrecorded wrk run, then one request to drain what it left queued.

    A server with 2 single-threaded workers still owes 256 x 20 ms of W3
    requests to wrk's dead connections when the warm-up ends; the drain request
    queues behind them, so the measured run starts on an idle server.
    """
    if settings.warmup > 0:
        wrk.run(server.url, load, settings.warmup, settings.wrk_threads)
        server.answers(timeout=60)


def run_wrk(server: RunningServer, load: wrk.Load, settings: Settings) -> dict:
    """Warm up (not recorded), then measure one wrk run."""
    warm_up(server, load, settings)
    cpu_before = server.cpu_seconds()
    result = wrk.run(server.url, load, settings.duration, settings.wrk_threads)
    cpu = server.cpu_seconds() - cpu_before
    # cores the server got: well under 2 means the machine was busy elsewhere
    result["cores"] = cpu / (result["raw"]["duration_us"] / 1e6 or 1.0)
    result["cpu_us_per_req"] = (
        cpu * 1e6 / result["requests"] if result["requests"] else None
    )
    return result


class Trickle:
    """``count`` connections, each sending a request head one byte at a time,
    from one thread; counts the ones the server closes."""

    HEAD = b"GET /v1/ping HTTP/1.1\r\nHost: bench\r\nX-Slow: " + b"s" * 4096

    def __init__(self, port: int, count: int, interval: float) -> None:
        self.port, self.count, self.interval = port, count, interval
        self.closed_by_server = 0
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(30)
        return {
            "slow_opened": self.opened,
            "slow_closed_by_server": self.closed_by_server,
        }

    def _run(self) -> None:
        import socket

        socks = []
        for _ in range(self.count):
            sock = socket.socket()
            sock.setblocking(False)
            try:
                sock.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            except OSError:
                sock.close()
                continue
            socks.append([sock, 0])
        self.opened = len(socks)

        def cut_by_server(entry) -> None:
            self.closed_by_server += 1
            entry[0].close()
            socks.remove(entry)

        while socks and not self._stop.wait(self.interval):
            for entry in list(socks):
                sock, sent = entry
                try:
                    if sock.recv(1, socket.MSG_PEEK) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                except OSError:
                    cut_by_server(entry)
                    continue
                try:
                    entry[1] += sock.send(self.HEAD[sent : sent + 1])
                except BlockingIOError:
                    pass
                except OSError:
                    cut_by_server(entry)
        for sock, _ in socks:
            sock.close()


def run_slow_clients(server: RunningServer, settings: Settings) -> dict:
    """SC: W1 with SLOW_CLIENTS half-sent heads held open beside it."""
    load = loads(settings)["W1"]
    warm_up(server, load, settings)
    trickle = Trickle(server.port, SLOW_CLIENTS, SLOW_BYTE_INTERVAL)
    trickle.start()
    time.sleep(2 * SLOW_BYTE_INTERVAL)  # all connected, a byte or two sent
    cpu_before = server.cpu_seconds()
    result = wrk.run(server.url, load, settings.duration, settings.wrk_threads)
    cpu = server.cpu_seconds() - cpu_before
    result["cpu_us_per_req"] = (
        cpu * 1e6 / result["requests"] if result["requests"] else None
    )
    result.update(trickle.stop())
    return result


def run_reload(server: RunningServer, settings: Settings) -> dict:
    """R: SIGHUP the master 30% into a W1 run; count what failed meanwhile."""
    load = loads(settings)["W1"]
    warm_up(server, load, settings)
    proc = wrk.start(server.url, load, settings.duration, settings.wrk_threads)
    time.sleep(settings.duration * R_HUP_FRACTION)
    server.signal_master(signal.SIGHUP)
    result = wrk.finish(proc, timeout=settings.duration + 60)
    result["alive_after"] = server.proc.poll() is None and server.answers()
    result["clean"] = result["alive_after"] and not result["errors"] + result["non2xx"]
    return result


class InFlight:
    """N threads, each sending one slow request on its own connection.

    ``wait_sent()`` returns once every request is written to its socket (or
    failed to be), which is the moment the bench treats them as in flight.
    """

    def __init__(self, port: int, count: int, sleep_ms: int) -> None:
        self.port, self.count, self.sleep_ms = port, count, sleep_ms
        self.sent = 0
        self.settled = 0  # sent, or failed before it could be sent
        self.outcomes: list[str] = []
        self._cond = threading.Condition()
        self.threads = [
            threading.Thread(target=self._one, daemon=True) for _ in range(count)
        ]

    def _mark(self, sent: bool) -> None:
        with self._cond:
            self.sent += sent
            self.settled += 1
            self._cond.notify_all()

    def _one(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("GET", f"/v1/sleep?ms={self.sleep_ms}")
        except OSError as exc:
            self._mark(sent=False)
            outcome = f"not sent: {type(exc).__name__}"
        else:
            self._mark(sent=True)
            try:
                resp = conn.getresponse()
                resp.read()
                outcome = "ok" if resp.status == 200 else f"status {resp.status}"
            except (OSError, http.client.HTTPException) as exc:
                outcome = f"cut: {type(exc).__name__}"
        conn.close()
        with self._cond:
            self.outcomes.append(outcome)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def wait_sent(self, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.settled == self.count, timeout)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _wait_accepted(server: RunningServer, timeout: float) -> int | None:
    """Wait until the server has accepted every waiting connection (the accept
    queue is empty), then a little longer for it to read the requests; return the
    queue length at the end. Servers with one request per worker never drain it
    while busy: for them the wait ends at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        queued = server.accept_queue()
        if not queued or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    time.sleep(0.1)
    return server.accept_queue()


def run_graceful(server: RunningServer, settings: Settings) -> dict:
    """G: SIGTERM while 1 s requests are in flight; how many of them finish."""
    background = wrk.Load("/v1/sleep?ms=20", G_BACKGROUND_CONNECTIONS)
    bg = wrk.start(server.url, background, 5, settings.wrk_threads)
    time.sleep(1.0)  # the background load is running before the slow requests go
    client = InFlight(server.port, G_IN_FLIGHT, G_SLEEP_MS)
    client.start()
    client.wait_sent(timeout=30)
    queued = _wait_accepted(server, timeout=5.0)
    sent = client.sent
    signalled = time.monotonic()
    server.signal_master(signal.SIGTERM)
    client.join(timeout=60)
    status = server.wait_exit(timeout=60)
    exit_s = time.monotonic() - signalled if status is not None else None
    bg_result = wrk.finish(bg)
    failures = sorted({o for o in client.outcomes if o != "ok"})
    return {
        "in_flight": sent,
        "queued_at_signal": queued,
        "finished": client.outcomes.count("ok"),
        "failures": failures,
        "all_finished": sent == G_IN_FLIGHT and client.outcomes.count("ok") == sent,
        "exit_status": status,
        "exit_s": exit_s,
        "background_errors": bg_result["errors"],
    }
