"""The threads scheduler's own behaviour: what its epoll thread is spared.

A keep-alive request is re-armed by the pool thread that answered it (no
wake-up of the epoll thread), and a pipelining client's next request, parsed
or already arrived, is served by that pool thread (no turn of the epoll
thread); neither lets a client hold a thread. The epoll thread's turns for a
connection are counted by wrapping ``Scheduler._readable`` (each call is one
event of that connection), its wake-ups by wrapping ``Scheduler._wake``.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.helpers import wait_for
from tests.unit._http_cases import HOST, request_bytes, split_responses
from tests.unit._wsgi_inproc import connect, make_conf, read_response, running
from wsgisvc import backend
from wsgisvc.http import listeners

GET = request_bytes(b"GET / HTTP/1.1", HOST)


@pytest.fixture(autouse=True)
def threads_scheduler():
    saved, backend.NAME = backend.NAME, "threading"
    try:
        yield
    finally:
        backend.NAME = saved


def counted(monkeypatch, scheduler, name: str) -> list:
    """Record each call of ``scheduler.<name>`` (and still make it)."""
    calls = []
    method = getattr(scheduler, name)

    def counting(*args, **kwargs):
        calls.append(args)
        return method(*args, **kwargs)

    monkeypatch.setattr(scheduler, name, counting)
    return calls


def path_app(entered: threading.Event, release: threading.Event):
    """Answers the path; ``/hold`` waits for ``release`` (``entered`` set)."""

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/hold":
            entered.set()
            release.wait(10)
        body = path.encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    return app


def read_responses(sock, count: int) -> list[bytes]:
    """The bodies of the next ``count`` responses on ``sock`` (bodies hold
    no blank line)."""
    sock.settimeout(10)
    data = b""
    while True:
        if data.count(b"\r\n\r\n") >= count:
            answers = split_responses(data)
            _, lengths, body = answers[-1]
            if len(answers) == count and len(body) == int(lengths[0]):
                return [body for _, _, body in answers]
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk


@pytest.mark.timeout(30)
def test_keep_alive_requests_are_re_armed_without_waking_the_epoll_thread(
    monkeypatch,
):
    """Before: each answered request went back to the selector thread through
    a queue and a byte on its wake socket. Now the pool thread re-arms the
    connection in the epoll set itself: 20 requests, at most one wake-up
    (a first deadline earlier than the one the epoll thread sleeps until; a
    call made while that wake-up is pending, on a loaded machine, wakes
    nobody)."""
    with running(make_conf(), path_app(threading.Event(), threading.Event())) as srv:
        scheduler = srv._scheduler
        wake, wakes = scheduler._wake, []

        def waking():  # a call while a wake-up is pending wakes nobody
            if not scheduler._woken:
                wakes.append(time.monotonic())
            wake()

        monkeypatch.setattr(scheduler, "_wake", waking)
        sock = connect(srv)
        for _ in range(20):
            sock.sendall(GET)
            assert read_response(sock).startswith(b"HTTP/1.1 200 OK")
        assert len(wakes) <= 1, f"{len(wakes)} wake-ups for 20 requests"
        sock.close()


@pytest.mark.timeout(30)
def test_a_pipelining_clients_next_requests_are_served_by_the_same_pool_thread(
    monkeypatch,
):
    """A request pipelined with the one before (parsed with it), and one that
    arrives while the one before is served (read by the pool thread after the
    answer), are served without a turn of the epoll thread: one event for the
    three requests. Before: each went back to the selector thread."""
    entered, release = threading.Event(), threading.Event()
    with running(make_conf(), path_app(entered, release)) as srv:
        turns = counted(monkeypatch, srv._scheduler, "_readable")
        sock = connect(srv)
        sock.sendall(
            request_bytes(b"GET /hold HTTP/1.1", HOST)
            + request_bytes(b"GET /second HTTP/1.1", HOST)
        )
        assert entered.wait(10)
        # On loopback, the third is in the server's socket once sent: before
        # /hold is answered.
        sock.sendall(request_bytes(b"GET /third HTTP/1.1", HOST))
        release.set()
        assert read_responses(sock, 3) == [b"/hold", b"/second", b"/third"]
        assert len(turns) == 1, f"{len(turns)} epoll-thread turns for 3 requests"
        sock.close()


@pytest.mark.timeout(30)
def test_a_pipelining_client_holds_no_thread_while_its_next_head_trickles_in():
    """With one pool thread: a client whose answered request came with the
    start of its next head, and who then sends no more, does not keep the
    thread that served it (it reads what has arrived, then parks the
    connection): another client is answered meanwhile, and the first one's
    head, once whole, is answered too."""
    entered, release = threading.Event(), threading.Event()
    release.set()
    conf = make_conf(wsgi_default_pool_size=1)
    with running(conf, path_app(entered, release)) as srv:
        slow = connect(srv)
        slow.sendall(GET + b"GET /slow HT")
        assert read_response(slow).startswith(b"HTTP/1.1 200 OK")
        wait_for(lambda: srv.pool.busy == 0, timeout=5, what="the thread back")
        other = connect(srv)
        other.sendall(request_bytes(b"GET /other HTTP/1.1", HOST))
        assert read_responses(other, 1) == [b"/other"]
        slow.sendall(b"TP/1.1\r\nHost: x\r\n\r\n")
        assert read_responses(slow, 1) == [b"/slow"]
        other.close(), slow.close()


@pytest.mark.timeout(30)
def test_a_client_that_reads_no_answer_frees_its_thread_at_the_socket_timeout():
    """The socket stays non-blocking: a send that would block waits in poll
    for ``client_socket_timeout`` (for the whole answer, as a blocking
    socket's sendall), then the connection ends and its thread is free."""
    body = b"x" * (64 * 1024 * 1024)  # more than the socket buffers hold

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    conf = make_conf(client_socket_timeout=1, wsgi_default_pool_size=1)
    with running(conf, app) as srv:
        sock = connect(srv)
        sock.sendall(GET)  # and reads nothing
        wait_for(lambda: srv.pool.busy == 1, timeout=5, what="the answer begun")
        began = time.monotonic()
        wait_for(lambda: srv.pool.busy == 0, timeout=10, what="the thread free")
        assert time.monotonic() - began > 0.5
        wait_for(lambda: srv._scheduler.connections == 0, timeout=5, what="closed")
        sock.close()


@pytest.mark.timeout(30)
def test_a_stop_while_accepting_is_deferred_does_not_spin(monkeypatch):
    """Defect: a stop while the epoll thread deferred accepting (every slot
    busy, a connection waiting: left to a sibling for ``ACCEPT_DEFER``) left
    the deferral's time armed, so the epoll thread woke at once, again and
    again, until the last request in flight ended."""
    monkeypatch.setattr(listeners, "ACCEPT_DEFER", 1.0)  # time to stop during it
    entered, release = threading.Event(), threading.Event()
    conf = make_conf(wsgi_default_pool_size=1)
    with running(conf, path_app(entered, release)) as srv:
        scheduler = srv._scheduler
        busy = connect(srv)
        busy.sendall(request_bytes(b"GET /hold HTTP/1.1", HOST))
        assert entered.wait(10)
        waiting = connect(srv)  # the pool is full: accepting is deferred
        retry_at = wait_for(lambda: scheduler._retry_accept_at, timeout=5)
        srv.stop()
        time.sleep(max(0.0, retry_at - time.monotonic()) + 0.1)  # it has passed
        turns = counted(monkeypatch, scheduler, "_timeout")
        time.sleep(0.5)  # the request still in flight: how often does it turn?
        assert len(turns) <= 5, f"{len(turns)} turns in 0.5 s while stopping"
        release.set()
        assert read_responses(busy, 1) == [b"/hold"]
        busy.close()
        waiting.close()


@pytest.mark.timeout(30)
def test_requests_that_block_get_every_thread_of_the_pool():
    """Sleeping pool threads are woken one at a time, and a thread that takes
    a connection wakes the next while more wait: requests that arrive
    together, and block until all of them are in the application, are
    served together; none waits in the queue behind a blocked one."""
    count = 8
    together = threading.Barrier(count, timeout=5)

    def app(environ, start_response):
        try:
            together.wait()
            status = "200 OK"
        except threading.BrokenBarrierError:
            status = "503 Service Unavailable"
        start_response(status, [("Content-Length", "0")])
        return []

    with running(make_conf(wsgi_default_pool_size=count), app) as srv:
        socks = [connect(srv) for _ in range(count)]
        wait_for(
            lambda: srv._scheduler.connections == count, timeout=5, what="accepted"
        )
        for sock in socks:
            sock.sendall(GET)
        answers = [read_response(sock, timeout=10) for sock in socks]
        assert [a.split(b"\r\n")[0] for a in answers] == [b"HTTP/1.1 200 OK"] * count
        for sock in socks:
            sock.close()
