"""wsgisvc.wsgi.Server in process: binding, pool, stop/wait/reset, limits, logs."""

from __future__ import annotations

import logging
import os
import socket
import stat
import time

import eventlet
import pytest
from eventlet.green import socket as green_socket

from tests.unit._wsgi_inproc import (  # noqa: F401  (scheduler: a fixture)
    GOOD_REQUEST,
    RecordingApp,
    connect,
    get,
    hello_app,
    make_conf,
    raw,
    read_response,
    read_until_closed,
    running,
    scheduler,
    sleepy_app,
)
from wsgisvc import backend, wsgi


@pytest.mark.timeout(30)
def test_port_zero_is_the_real_port_and_serves():
    conf = make_conf()
    with running(conf, hello_app) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert get(server, "/")[0] == 200


@pytest.mark.timeout(30)
def test_listener_has_keepalive_options():
    server = wsgi.Server(make_conf(tcp_keepidle=77), "t", hello_app, "127.0.0.1", 0)
    try:
        sock = server._socket
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 77
    finally:
        server.stop()


@pytest.mark.timeout(30)
def test_port_in_use_is_one_clear_error():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        wsgi.Server.bind_retry_seconds, saved = 0.3, wsgi.Server.bind_retry_seconds
        with pytest.raises(wsgi.BindError, match=f"127.0.0.1:{port}.*in use"):
            wsgi.Server(make_conf(), "osapi", hello_app, "127.0.0.1", port)
    finally:
        wsgi.Server.bind_retry_seconds = saved
        taken.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.timeout(30)
@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_ipv6():
    with running(make_conf(), hello_app, host="::1") as server:
        assert server.url == f"http://[::1]:{server.port}"
        assert get(server, "/")[0] == 200


@pytest.mark.timeout(30)
def test_unix_socket_with_mode_and_stale_file(tmp_path):
    path = str(tmp_path / "api.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)  # a file left behind by a dead server
    stale.close()
    with running(make_conf(), hello_app, socket_file=path, socket_mode="0640") as srv:
        assert srv.url == f"http+unix://{path}"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
        client = green_socket.socket(socket.AF_UNIX)
        client.connect(path)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_until_closed(client).startswith(b"HTTP/1.1 200")
        client.close()
        with pytest.raises(wsgi.BindError, match="in use"):
            wsgi.Server(make_conf(), "t", hello_app, socket_file=path)


@pytest.mark.timeout(30)
def test_stop_lets_in_flight_finish_closes_idle_and_refuses_new():
    with running(make_conf(), sleepy_app) as server:
        idle = connect(server)
        idle.sendall(GOOD_REQUEST)
        assert read_response(idle).startswith(b"HTTP/1.1 200")
        busy = connect(server)
        busy.sendall(b"GET /?s=0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        eventlet.sleep(0.1)  # let the server read it and start sleeping

        server.stop()

        assert read_until_closed(idle, timeout=2) == b""  # idle one closed at once
        with pytest.raises(ConnectionRefusedError):
            green_socket.create_connection(("127.0.0.1", server.port), timeout=2)
        answer = read_until_closed(busy, timeout=5)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"slept")
        assert b"Connection: close" in answer
        with eventlet.Timeout(5):
            server.wait()


@pytest.mark.timeout(30)
def test_connection_accepted_just_before_stop_is_served_not_reset():
    with running(make_conf(), hello_app) as server:
        fresh = connect(server)
        eventlet.sleep(0.05)  # accepted, but its request is not sent yet
        server.stop()
        fresh.sendall(GOOD_REQUEST)
        answer = read_until_closed(fresh, timeout=5)
        assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer


@pytest.mark.timeout(30)
def test_a_response_begun_before_stop_leaves_its_connection_the_grace():
    """A response whose head went out kept alive before stop() and whose body
    ends after the idle connections were closed: a next request sent at once
    is answered (Connection: close); without one the connection closes after
    the grace, not at wsgi_keepalive_timeout (issue 24)."""
    released = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "10")])
        if environ["PATH_INFO"] == "/idle":
            return [b"idle-ended"]
        return streamed()

    def streamed():
        yield b"first"
        while not released:
            backend.sleep(0.01)  # on threads, no greenlet in a pool thread
        yield b"-last"

    with running(make_conf(wsgi_keepalive_timeout=60), app) as server:
        idle = connect(server)
        idle.sendall(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(idle).endswith(b"idle-ended")
        asks, quiet = connect(server), connect(server)
        for sock in (asks, quiet):
            sock.sendall(GOOD_REQUEST)
            begun = b""
            while not begun.endswith(b"first"):
                begun += sock.recv(4096)
            assert b"Connection: close" not in begun

        server.stop()
        assert read_until_closed(idle) == b""  # the idle connections are closed
        released.append(True)

        for sock in (asks, quiet):
            assert sock.recv(4096) == b"-last"
        asks.sendall(GOOD_REQUEST)
        answer = read_until_closed(asks)
        assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer
        ended = time.monotonic()
        assert read_until_closed(quiet) == b""
        assert time.monotonic() - ended < 3


@pytest.mark.timeout(30)
def test_wait_returns_only_when_in_flight_requests_are_done():
    finished = []

    def app(environ, start_response):
        answer = sleepy_app(environ, start_response)
        finished.append(environ["PATH_INFO"])  # the response is ready
        return answer

    with running(make_conf(), app) as server:
        results = []
        client = eventlet.spawn(lambda: results.append(get(server, "/?s=0.5")))
        eventlet.sleep(0.1)
        server.stop()
        server.wait()
        assert finished, "wait() returned before the request ended"
        client.wait()
        assert results[0][0] == 200


@pytest.mark.timeout(30)
def test_reset_restores_the_configured_pool_size_and_rebinds():
    conf = make_conf(wsgi_default_pool_size=7)
    server = wsgi.Server(conf, "t", hello_app, "127.0.0.1", 0)
    port = server.port
    server.start()
    assert server.pool.size == 7
    server.stop()
    server.wait()
    assert server.pool.size == 0
    conf.set_override("wsgi_default_pool_size", 9)  # as a SIGHUP reload would

    server.reset()

    assert server.pool.size == 9
    server.start()  # a single-process restart: same port, serving again
    try:
        assert server.port == port
        assert get(server, "/")[0] == 200
    finally:
        server.stop()
        server.wait()


@pytest.mark.timeout(30)
@pytest.mark.filterwarnings("ignore:Using fork:DeprecationWarning")
def test_a_forked_worker_never_binds_its_parents_socket_again():
    """stop() then reset() and start() in a forked child (a worker that acted
    on a SIGHUP of its own, issue 24): reset() resizes the pool and leaves the
    listener closed, start() is one BindError at once; neither retries a bind
    of the port its parent holds. The parent's reset() still rebinds."""
    conf = make_conf(wsgi_default_pool_size=7)
    server = wsgi.Server(conf, "t", hello_app, "127.0.0.1", 0)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: report what happened, then leave at once
        os.close(read_fd)
        outcome = []
        try:
            begun = time.monotonic()
            server.stop()
            conf.set_override("wsgi_default_pool_size", 9)
            server.reset()
            outcome += [server.pool.size, server.socket is None]
            try:
                server.start()
            except wsgi.BindError as exc:
                outcome.append(str(exc))
            outcome.append(time.monotonic() - begun < 1)
        finally:
            os.write(write_fd, repr(outcome).encode())
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        outcome = pipe.read()
    os.waitpid(pid, 0)
    assert outcome == repr(
        [
            9,
            True,
            "t: stopped in a worker, which does not bind its parent's listening "
            "socket again",
            True,
        ]
    )
    port = server.port
    server.stop()
    server.reset()  # in the process that bound it: listening again
    assert server.socket is not None and server.port == port
    server.stop()


@pytest.mark.timeout(30)
def test_explicit_pool_size_wins_over_the_option():
    conf = make_conf(wsgi_default_pool_size=7)
    server = wsgi.Server(conf, "t", hello_app, "127.0.0.1", 0, pool_size=3)
    server.stop()
    server.reset()
    assert server.pool.size == 3


@pytest.mark.timeout(30)
def test_idle_keep_alive_connections_hold_no_pool_slot():
    """Pool of 2, two idle keep-alive clients: a third is served at once, and
    none of the three is told to close (they hold no slot while idle)."""
    with running(make_conf(), hello_app, pool_size=2) as server:
        first, second = connect(server), connect(server)
        for sock in (first, second):
            sock.sendall(GOOD_REQUEST)
            assert b"Connection: close" not in read_response(sock)
        third = connect(server)
        third.sendall(GOOD_REQUEST)
        answer = read_response(third, timeout=1)
        assert answer.startswith(b"HTTP/1.1 200")
        assert b"Connection: close" not in answer
        for sock in (first, second):
            sock.sendall(GOOD_REQUEST)
            assert b"Connection: close" not in read_response(sock)
        for sock in (first, second, third):
            sock.close()


@pytest.mark.timeout(30)
def test_full_pool_queues_the_next_request_until_a_slot_frees():
    """Pool of 1: a request waits for the slot while another is served, and
    is served as soon as the slot frees; both connections stay open."""
    with running(make_conf(), sleepy_app, pool_size=1) as server:
        busy, waiting = connect(server), connect(server)
        busy.sendall(b"GET /?s=0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
        eventlet.sleep(0.05)
        waiting.sendall(GOOD_REQUEST)
        waiting.settimeout(0.1)
        with pytest.raises(TimeoutError):
            waiting.recv(100)  # the slot is taken
        assert read_response(busy).endswith(b"slept")
        answer = read_response(waiting, timeout=2)
        assert answer.startswith(b"HTTP/1.1 200")
        assert b"Connection: close" not in answer
        busy.close()
        waiting.close()


@pytest.mark.timeout(30)
def test_header_timeout_cuts_a_slow_client():
    with running(make_conf(wsgi_header_timeout=1), hello_app) as server:
        slow = connect(server)
        slow.sendall(b"GET / HTTP/1.1\r\n")  # and then nothing
        assert read_until_closed(slow, timeout=10) == b""
        assert get(server, "/")[0] == 200


@pytest.mark.timeout(30)
def test_keep_alive_off_closes_after_each_response():
    with running(make_conf(wsgi_keep_alive=False), hello_app) as server:
        answer = raw(server, GOOD_REQUEST)
        assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer


@pytest.mark.timeout(30)
def test_max_url_len_gives_414():
    with running(make_conf(), hello_app, max_url_len=64) as server:
        assert raw(server, b"GET /" + b"a" * 80 + b" HTTP/1.1\r\n\r\n").startswith(
            b"HTTP/1.1 414"
        )
        assert get(server, "/short")[0] == 200


def _failing_app(environ, start_response):
    raise RuntimeError("secret detail")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("debug", [False, True])
def test_wsgi_server_debug_decides_whether_tracebacks_are_sent(debug):
    with running(make_conf(wsgi_server_debug=debug), _failing_app) as server:
        status, _, body = get(server, "/")
    assert status == 500
    assert (b"secret detail" in body) is debug


@pytest.mark.timeout(30)
def test_wsgi_log_format_is_used_for_the_access_log(caplog):
    caplog.set_level(logging.INFO, logger="wsgisvc.access")
    conf = make_conf(wsgi_log_format="ACCESS %(request_line)s -> %(status_code)s")
    with running(conf, hello_app) as server:
        get(server, "/logged")
    assert "ACCESS GET /logged HTTP/1.1 -> 200" in caplog.text


@pytest.mark.timeout(30)
def test_environ_carries_server_state_and_chunked_input_flag():
    app = RecordingApp()
    with running(make_conf(), app) as server:
        get(server, "/")
        environ = app.calls[-1]
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgisvc.server"] is server
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is (backend.NAME == "threading")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("repeat", range(3))
def test_stop_under_keep_alive_load_never_cuts_a_connection_unannounced(repeat):
    """Clients busy on keep-alive connections while stop() runs: each either
    gets answers or a last answer saying Connection: close, never a close in
    place of an answer (a SIGHUP reload under load, issue 12's R)."""
    cut = []

    with running(make_conf(), hello_app) as server:

        def client():
            sock = connect(server, timeout=5)
            try:
                while True:
                    try:
                        sock.sendall(GOOD_REQUEST)
                        answer = read_response(sock, timeout=5)
                    except OSError as exc:
                        cut.append(repr(exc))
                        return
                    if not answer:
                        cut.append("closed without an answer")
                        return
                    if b"Connection: close" in answer:
                        return
            finally:
                sock.close()

        clients = [eventlet.spawn(client) for _ in range(16)]
        eventlet.sleep(0.2)
        # A connection kept alive past the stop is closed once this grace
        # passes without its next request, as the docstring of wsgi says: a
        # grace no loaded machine outlasts between two requests of a client.
        server.idle_close_grace = 10.0
        server.stop()
        for thread in clients:
            thread.wait()
    assert not cut, cut
