"""Fairness under a saturated pool, on a real wsgisvc-api, both backends.

With the pool saturated by slow requests, requests are answered in the order
their heads became whole (within one pool's width), and none waits longer than
(requests queued ahead / pool size + 1) x the app's time, plus a margin.

A property, not a timing benchmark: one worker process (one scheduler), a pool
of ``POOL``, ``N = 4 x POOL`` connections opened and held by the server first
(idle connections hold no slot), then one ``GET /v1/sleep`` head on each, in a
known order. Under FIFO, request ``i`` (0-based send order) is served in wave
``i // POOL`` and is answered after ``(i // POOL + 1) x T``; a scheduler that
served the newest first (LIFO) would answer request ``POOL`` in the last
wave, completion rank >= 3 x POOL and a wait of ~4 T, both out of bounds
(rank within +-POOL; wait <= 2 T + MARGIN = 3 T); one that starved a request
would break its wait bound the same way.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import threading
import time

import pytest

from tests.functional._wsgi_util import api_server
from tests.helpers import wait_for

POOL = 4
N = 4 * POOL
T = 0.3  # the app's time per request, seconds
MARGIN = T  # scheduling and client overhead on a loaded 2-core machine
SPACING = 0.005  # between two heads: their order of arrival is the send order
ROUNDS = 3

REPORTED = "report requested (SIGUSR2)"
OPEN = re.compile(r"free; (\d+) connection\(s\) open")  # the server's section
HEAD = (
    f"GET /v1/sleep?ms={int(T * 1000)} HTTP/1.1\r\n"
    "Host: fairness\r\nConnection: close\r\n\r\n"
).encode()


def open_connections(api) -> int:
    """How many connections the server says it holds: its SIGUSR2 report."""
    before = api.log().count(REPORTED)
    os.kill(api.pid, signal.SIGUSR2)

    def reported():
        log = api.log()
        if log.count(REPORTED) <= before:
            return None
        return OPEN.search(log, log.rindex(REPORTED))

    return int(wait_for(reported, timeout=20, what="the SIGUSR2 report").group(1))


def one_round(api) -> tuple[list[float], list[float]]:
    """Send N heads on N held connections, in order: (sent, answered) times."""
    wait_for(lambda: open_connections(api) == 0, timeout=20, what="no connections")
    socks = [socket.create_connection(("127.0.0.1", api.port)) for _ in range(N)]
    try:
        wait_for(lambda: open_connections(api) == N, timeout=20, what="N held")
        sent = [0.0] * N
        answered = [0.0] * N
        statuses: list[int | None] = [None] * N

        def read(i: int) -> None:
            response = http.client.HTTPResponse(socks[i])
            response.begin()
            response.read()
            answered[i] = time.monotonic()
            statuses[i] = response.status

        readers = [threading.Thread(target=read, args=(i,)) for i in range(N)]
        for sock in socks:
            sock.settimeout(30)
        for reader in readers:
            reader.start()
        for i, sock in enumerate(socks):
            sock.sendall(HEAD)  # the whole head at once
            sent[i] = time.monotonic()
            time.sleep(SPACING)  # pacing, not waiting for a condition
        for reader in readers:
            reader.join(30)
        assert statuses == [200] * N, statuses
        return sent, answered
    finally:
        for sock in socks:
            sock.close()


def unfair(sent: list[float], answered: list[float]) -> list[str]:
    """The requests out of order or over their wait bound, one line each."""
    by_answer = sorted(range(N), key=answered.__getitem__)
    rank = {i: r for r, i in enumerate(by_answer)}
    lines = []
    for i in range(N):
        waited = answered[i] - sent[i]
        bound = (i // POOL + 1) * T + MARGIN
        if abs(rank[i] - i) > POOL or waited > bound:
            lines.append(
                f"request {i}: answer rank {rank[i]}, waited {waited:.3f} s "
                f"(bound {bound:.3f} s)"
            )
    return lines


@pytest.mark.timeout(60)
def test_a_saturated_pool_answers_in_order_and_within_the_bound(tmp_path, backend):
    extra = f"wsgi_default_pool_size = {POOL}\n"
    with api_server(tmp_path, workers=1, extra=extra, backend=backend) as api:
        for round_ in range(ROUNDS):
            sent, answered = one_round(api)
            bad = unfair(sent, answered)
            if bad:
                order = sorted(range(N), key=answered.__getitem__)
                pytest.fail(f"round {round_}, answer order {order}:\n" + "\n".join(bad))


BUSY = 2 * POOL  # keep-alive clients that each send their next request at once


@pytest.mark.timeout(60)
def test_a_new_connection_is_not_starved_by_clients_that_keep_the_pool_full(
    tmp_path, backend
):
    """A worker with no free slot leaves a new connection to its siblings
    only for a moment (listeners.ACCEPT_DEFER), then takes it and queues its
    request behind the ones already waiting. Before, it accepted only once
    no request waited for a slot, which busy keep-alive clients never let
    happen: the connection waited in the backlog for as long as they ran."""
    extra = f"wsgi_default_pool_size = {POOL}\n"
    with api_server(tmp_path, workers=1, extra=extra, backend=backend) as api:
        stop = threading.Event()
        answers = [0] * BUSY

        def busy(i: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
            try:
                while not stop.is_set():
                    conn.request("GET", f"/v1/sleep?ms={int(T * 1000)}")
                    conn.getresponse().read()
                    answers[i] += 1
            finally:
                conn.close()

        clients = [threading.Thread(target=busy, args=(i,)) for i in range(BUSY)]
        for client in clients:
            client.start()
        try:
            wait_for(lambda: all(answers), timeout=20, what="every busy client")
            sent = time.monotonic()
            new = socket.create_connection(("127.0.0.1", api.port))
            new.settimeout(30)
            try:
                new.sendall(HEAD)
                response = http.client.HTTPResponse(new)
                response.begin()
                response.read()
                waited = time.monotonic() - sent
            finally:
                new.close()
            starved_for = sum(answers)
        finally:
            stop.set()
            for client in clients:
                client.join(30)
    assert response.status == 200
    # BUSY requests at most are ahead of it: served or waiting for a slot.
    bound = (BUSY // POOL + 1) * T + MARGIN
    assert waited <= bound, f"waited {waited:.2f} s (bound {bound:.2f} s)"
    assert starved_for  # the pool was kept full meanwhile
