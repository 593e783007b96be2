"""The HTTP/1.1 core over real sockets, as a hostile client would try it.

Raw bytes against a real server, one test (or a parametrized set) per class of
the issue: chunk framing, extensions, trailers, unterminated lines, early
answers, the head deadline, the idle keep-alive timeout, slow clients beside
fast ones, Connection as a token list, Expect on HTTP/1.0, absolute-form
targets, Host, running out of file descriptors.
"""

from __future__ import annotations

import logging
import os
import resource
import time

import eventlet
import pytest
from eventlet.green import socket as green_socket

from tests.helpers import green_wait_for
from tests.unit._http_cases import BAD_BODIES, HOST, POST11, request_bytes
from tests.unit._wsgi_inproc import (  # noqa: F401  (scheduler: a fixture)
    RecordingApp,
    connect,
    hello_app,
    make_conf,
    raw,
    read_response,
    read_until_closed,
    running,
    scheduler,
)
from wsgisvc.http import limits


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def app():
    return RecordingApp()


@pytest.fixture
def server(app):
    with running(make_conf(max_header_line=256), app) as srv:
        yield srv


GOOD_CLOSING = request_bytes(b"GET / HTTP/1.1", HOST, b"Connection: close")


def status_of(answer: bytes) -> bytes:
    return answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else answer


# --- chunked framing, extensions, trailers ------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_malformed_chunked_body_is_400_closed_and_nothing_after_it_served(
    server, app, case
):
    body = BAD_BODIES[case]
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    payload = request_bytes(POST11, HOST, b"Transfer-Encoding: chunked") + body

    answer = raw(server, payload + smuggled)

    assert status_of(answer) == b"400", answer
    assert b"Connection: close" in answer
    assert answer.count(b"HTTP/1.1") == 1, "something after the bad body was served"
    assert all(c["PATH_INFO"] != "/smuggled" for c in app.calls)


@pytest.mark.timeout(30)
def test_valid_extensions_and_trailers_pass_and_frame_the_next_request(server, app):
    chunked = request_bytes(POST11, HOST, b"Transfer-Encoding: chunked") + (
        b'3;name=value;flag\r\nabc\r\n2;q="quoted"\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    following = request_bytes(
        b"POST /next HTTP/1.1", HOST, b"Content-Length: 2", b"Connection: close"
    )
    answer = raw(server, chunked + following + b"fg")  # pipelined: framing holds
    first, _, second = answer.partition(b"abcde")
    assert first.startswith(b"HTTP/1.1 200"), answer
    assert second.startswith(b"HTTP/1.1 200") and second.endswith(b"fg"), answer
    assert app.calls[-1]["PATH_INFO"] == "/next"


# --- unterminated lines: refused early, memory bounded --------------------------


def _send_endless(sock, prefix: bytes, filler: bytes, total: int) -> int:
    """Send ``prefix`` then ``filler`` up to ``total`` bytes; the bytes sent
    before the server closed (or ``total``)."""
    sent = 0
    try:
        sock.sendall(prefix)
        while sent < total:
            sock.sendall(filler)
            sent += len(filler)
    except OSError:
        pass
    return sent


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "what, prefix, status",
    [
        ("request line", b"GET /", b"414"),
        ("header line", b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: ", b"431"),
        (
            "chunk-size line",
            request_bytes(POST11, HOST, b"Transfer-Encoding: chunked") + b"1",
            b"400",
        ),
        (
            "chunk extension",
            request_bytes(POST11, HOST, b"Transfer-Encoding: chunked") + b"1;a=",
            b"400",
        ),
        (
            "trailer line",
            request_bytes(POST11, HOST, b"Transfer-Encoding: chunked") + b"0\r\nX-T: ",
            b"400",
        ),
    ],
)
def test_unterminated_line_is_refused_early_with_memory_bounded(
    server, what, prefix, status
):
    before = rss_kib()
    sock = connect(server, timeout=10)
    try:
        sent = _send_endless(sock, prefix, b"1" * 65536, 32 << 20)
        answer = read_until_closed(sock, timeout=10)
    finally:
        sock.close()
    assert status_of(answer) == status, (what, answer[:200])
    assert sent < 32 << 20, f"the server read a whole 32 MiB {what}"
    assert rss_kib() - before < 8 << 10, "RSS grew with the unterminated line"


# --- early answers: bounded drain ----------------------------------------------


def early_413_app(environ, start_response):
    """Answers without reading the body, as a size limit filter does."""
    start_response("413 Request Entity Too Large", [("Content-Length", "0")])
    return [b""]


@pytest.mark.timeout(30)
def test_early_answer_to_a_huge_body_closes_after_a_bounded_read():
    with running(make_conf(), early_413_app) as server:
        sock = connect(server, timeout=10)
        head = request_bytes(POST11, HOST, b"Content-Length: 1000000000")
        started = time.monotonic()
        sent = _send_endless(sock, head, b"x" * 65536, 64 << 20)
        answer = read_until_closed(sock, timeout=10)
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413") and b"Connection: close" in answer
    assert sent < 64 << 20, "the server drained the body without limit"
    assert time.monotonic() - started < 5


@pytest.mark.timeout(30)
def test_early_answer_to_a_small_body_keeps_the_connection():
    with running(make_conf(), early_413_app) as server:
        sock = connect(server)
        body = b"y" * 1000
        request = request_bytes(POST11, HOST, b"Content-Length: 1000", body=body)
        sock.sendall(request)
        assert b"Connection: close" not in read_response(sock)
        sock.sendall(request)  # framed after the dropped body: served again
        assert read_response(sock).startswith(b"HTTP/1.1 413")
        sock.close()


# --- deadlines ------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_head_deadline_is_for_the_whole_head_not_per_read():
    conf = make_conf(wsgi_header_timeout=1.0, client_socket_timeout=60)
    with running(conf, hello_app) as server:
        sock = connect(server, timeout=10)
        started = time.monotonic()
        try:
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 100:
                sock.sendall(bytes([byte]))  # one byte per 0.1 s: never idle 1 s
                eventlet.sleep(0.1)
        except OSError:
            pass
        answer = read_until_closed(sock, timeout=10)
        sock.close()
    elapsed = time.monotonic() - started
    assert answer == b""
    assert 0.9 < elapsed < 3, elapsed


@pytest.mark.timeout(30)
def test_idle_keep_alive_connection_is_closed_after_its_timeout():
    conf = make_conf(wsgi_keepalive_timeout=0.5)
    with running(conf, hello_app) as server:
        sock = connect(server, timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"Connection: close" not in read_response(sock)
        idle_from = time.monotonic()
        assert read_until_closed(sock, timeout=10) == b""
        idle = time.monotonic() - idle_from
        sock.close()
    assert 0.4 < idle < 2, idle


@pytest.mark.timeout(60)
def test_many_slow_clients_do_not_lock_out_fast_ones():
    """Twice the pool in half-sent heads and idle connections: a fast client
    is still served at once."""
    with running(make_conf(), hello_app, pool_size=4) as server:
        slow = []
        for i in range(8):
            sock = connect(server)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"")
            slow.append(sock)
        green_wait_for(lambda: server._scheduler.connections >= 8)
        started = time.monotonic()
        for _ in range(4):
            assert raw(server, GOOD_CLOSING).startswith(b"HTTP/1.1 200")
        assert time.monotonic() - started < 1.0
        for sock in slow:
            sock.close()


# --- semantics: Connection, Expect, absolute-form, Host ------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "version, connection, closes",
    [
        (b"1.1", b"keep-alive, close", True),
        (b"1.1", b"close, keep-alive", True),
        (b"1.1", b"foo, Close", True),
        (b"1.1", b"upgrade-insecure, foo", False),
        (b"1.0", b"Keep-Alive, foo", False),
        (b"1.0", b"foo", True),
    ],
)
def test_connection_is_a_token_list(server, version, connection, closes):
    sock = connect(server)
    try:
        sock.sendall(
            b"GET / HTTP/%s\r\nHost: x\r\nConnection: %s\r\n\r\n"
            % (version, connection)
        )
        answer = read_response(sock)
        assert (b"Connection: close" in answer) is closes, answer
        if closes:
            assert read_until_closed(sock) == b""
        else:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200")
    finally:
        sock.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("version, continues", [(b"1.1", True), (b"1.0", False)])
def test_100_continue_only_to_http11(server, version, continues):
    sock = connect(server)
    try:
        sock.sendall(
            b"POST / HTTP/%s\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Expect: 100-continue\r\n\r\n" % version
        )
        sock.settimeout(0.5)
        try:
            first = sock.recv(100)
        except TimeoutError:
            first = b""
        assert first.startswith(b"HTTP/1.1 100 Continue") is continues, first
        sock.sendall(b"ok")
        answer = (
            first + read_until_closed(sock, timeout=5) if version == b"1.0" else None
        )
        if answer is None:
            answer = read_response(sock)
        assert b"HTTP/1.1 200" in answer and answer.endswith(b"ok")
    finally:
        sock.close()


@pytest.mark.timeout(30)
def test_absolute_form_target_is_parsed_into_host_and_path(server, app):
    answer = raw(
        server,
        b"GET http://api.example:8774/v1/ping?x=1 HTTP/1.1\r\nHost: other\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer
    environ = app.calls[-1]
    assert environ["PATH_INFO"] == "/v1/ping"
    assert environ["QUERY_STRING"] == "x=1"
    assert environ["HTTP_HOST"] == "api.example:8774"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "host, status",
    [
        (b"a, b", b"400"),
        (b"a b", b"400"),
        (b"user@h", b"400"),
        (b"h:80:81", b"400"),
        (b"h:8x", b"400"),
        (b"[::1", b"400"),
        (b"h/x", b"400"),
        (b"api.example:8774", b"200"),
        (b"[::1]:80", b"200"),
        (b"10.0.0.1", b"200"),
        (b"", b"200"),
    ],
)
def test_host_must_be_one_valid_authority(server, app, host, status):
    before = len(app.calls)
    answer = raw(
        server, b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host
    )
    assert status_of(answer) == status, answer
    assert len(app.calls) == before + (status == b"200")


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "target", [b"ftp://h/x", b"http://u@h/x", b"http:///x", b"x/y"]
)
def test_bad_request_targets_are_400(server, app, target):
    answer = raw(server, b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % target)
    assert status_of(answer) == b"400", answer
    assert not app.calls


# --- running out of file descriptors ---------------------------------------------


@pytest.mark.timeout(60)
def test_emfile_is_logged_once_and_backed_off(caplog):
    """Clients connect while the process has no descriptor left for accept():
    one error line for the whole streak, then, with descriptors back, the
    waiting clients are served."""
    caplog.set_level(logging.INFO, logger="wsgisvc.http")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with running(make_conf(), hello_app) as server:
        clients = [green_socket.socket() for _ in range(3)]  # descriptors first
        fillers: list[int] = []
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (_highest_fd() + 1, hard))
            fillers += _fill_descriptor_table()
            for sock in clients:
                sock.connect((server.host, server.port))  # needs no descriptor
                sock.sendall(GOOD_CLOSING)
            eventlet.sleep(1.6)  # three back-off periods, the listener ready
        finally:
            for fd in fillers:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for sock in clients:
            assert read_until_closed(sock).startswith(b"HTTP/1.1 200")
            sock.close()
    errors = [
        r.getMessage() for r in caplog.records if "cannot accept" in r.getMessage()
    ]
    assert len(errors) == 1, errors
    assert "Too many open files" in errors[0]
    assert any("accepting connections again" in r.getMessage() for r in caplog.records)


def _fill_descriptor_table() -> list[int]:
    """Take every free descriptor below the limit (holes left by closed ones)."""
    taken = []
    while True:
        try:
            taken.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            return taken


def _highest_fd() -> int:
    return max(int(fd) for fd in os.listdir("/proc/self/fd"))


def test_drain_and_linger_limits_are_bounded():
    assert limits.DRAIN_LIMIT <= 1 << 20 and limits.LINGER_SECONDS <= 5


@pytest.mark.timeout(60)
def test_many_keep_alive_connections_each_get_every_answer():
    """20 clients x 50 requests each, at once: every response arrives, none
    waits on a connection the scheduler lost track of between requests."""
    with running(make_conf(), hello_app) as server:

        def client():
            sock = connect(server, timeout=5)
            try:
                for _ in range(50):
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert read_response(sock, timeout=2).endswith(b"hello\n")
            finally:
                sock.close()

        clients = [eventlet.spawn(client) for _ in range(20)]
        for thread in clients:
            thread.wait()  # re-raises a client's failure


@pytest.mark.timeout(30)
def test_early_answer_to_an_expect_continue_closes_at_once():
    """The client holds its body back until 100 Continue, which an early answer
    never sends: the connection closes now instead of waiting for a body."""
    with running(make_conf(), early_413_app) as server:
        sock = connect(server)
        sock.sendall(
            request_bytes(POST11, HOST, b"Content-Length: 10", b"Expect: 100-continue")
        )
        started = time.monotonic()
        answer = read_until_closed(sock, timeout=5)
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413") and b"100 Continue" not in answer
    assert b"Connection: close" in answer
    assert time.monotonic() - started < 0.5


def answer_then_read_app(environ, start_response):
    """Sends the response's head and a first piece, then reads the body."""
    start_response("200 OK", [])
    yield b"first;"
    yield environ["wsgi.input"].read()


@pytest.mark.timeout(30)
def test_no_100_continue_inside_a_response_already_begun():
    """An application that answers before it reads an Expect: 100-continue
    request's body: no 100 Continue follows the response's head (it would
    land inside its body); the client sends its body when it sees the answer."""
    with running(make_conf(), answer_then_read_app) as server:
        sock = connect(server)
        sock.sendall(
            request_bytes(POST11, HOST, b"Content-Length: 5", b"Expect: 100-continue")
        )
        answer = b""
        while b"first;" not in answer:
            answer += sock.recv(65536)
        sock.sendall(b"hello")
        answer += read_until_closed(sock)
        sock.close()
    assert b"100 Continue" not in answer
    assert answer.endswith(b"\r\n\r\n6\r\nfirst;\r\n5\r\nhello\r\n0\r\n\r\n")


@pytest.mark.timeout(30)
def test_a_refusal_lingering_does_not_hold_up_other_clients(server):
    """A refused client that keeps its connection open makes the server drop
    its bytes for up to a second before closing; nobody else waits for that."""
    bad = connect(server)
    bad.sendall(b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n")  # refused; bad stays open
    assert status_of(bad.recv(4096)) == b"400"
    started = time.monotonic()
    assert raw(server, GOOD_CLOSING).startswith(b"HTTP/1.1 200")
    assert time.monotonic() - started < 0.3
    bad.close()
