"""The response paths of the HTTP core, on both schedulers: how each kind of
application answer is framed on the wire, and the body reading calls."""

from __future__ import annotations

import sys

import pytest

from tests.unit._http_cases import HOST, request_bytes
from tests.unit._wsgi_inproc import (  # noqa: F401  (scheduler: a fixture)
    connect,
    make_conf,
    raw,
    read_until_closed,
    running,
    scheduler,
)


def answer(app, data: bytes, **conf) -> bytes:
    with running(make_conf(**conf), app) as server:
        return raw(server, data)


def head_and_body(response: bytes) -> tuple[bytes, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return head, body


def request(method=b"GET", version=b"1.1", *fields, body=b"") -> bytes:
    line = method + b" /x HTTP/" + version
    return request_bytes(line, HOST, b"Connection: close", *fields, body=body)


def generator_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"one "
    yield b""
    yield b"two"


def test_a_generator_without_length_is_chunked_to_http11():
    head, body = head_and_body(answer(generator_app, request()))
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert body == b"4\r\none \r\n3\r\ntwo\r\n0\r\n\r\n"


def test_a_generator_without_length_ends_with_the_close_for_http10():
    head, body = head_and_body(answer(generator_app, request(version=b"1.0")))
    assert b"chunked" not in head and b"Connection: close" in head
    assert body == b"one two"


def test_a_list_body_gets_its_length_computed():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ab", b"cd"]

    head, body = head_and_body(answer(app, request()))
    assert b"Content-Length: 4" in head and body == b"abcd"


def test_head_gets_the_length_but_no_body():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "5")])
        return [b"hello"]

    head, body = head_and_body(answer(app, request(method=b"HEAD")))
    assert b"Content-Length: 5" in head and body == b""


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_no_body_statuses_send_no_body_and_no_framing(status):
    def app(environ, start_response):
        start_response(status, [])
        return [b"ignored"]

    head, body = head_and_body(answer(app, request()))
    assert head.startswith(b"HTTP/1.1 " + status.encode())
    assert b"Content-Length" not in head and b"chunked" not in head and body == b""


def test_the_write_callable_then_the_iterable():
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Length", "6")])
        write(b"abc")
        return [b"def"]

    head, body = head_and_body(answer(app, request()))
    assert body == b"abcdef"


def test_exc_info_before_the_head_replaces_it():
    def app(environ, start_response):
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Oops", [("Content-Length", "0")], sys.exc_info())
        return []

    head, _ = head_and_body(answer(app, request()))
    assert head.startswith(b"HTTP/1.1 500 Oops") and b"X-First" not in head


def test_exc_info_after_the_head_reraises_and_the_connection_ends():
    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"partial")
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Oops", [], sys.exc_info())  # raises
        return [b"never"]

    response = answer(app, request())
    assert response.startswith(b"HTTP/1.1 200 OK") and b"never" not in response
    assert b"500" not in response.split(b"\r\n", 1)[1]


class Reader:
    """Reads the body with ``how`` and echoes what it got, repr'd."""

    def __init__(self, how) -> None:
        self.how = how

    def __call__(self, environ, start_response):
        got = repr(self.how(environ["wsgi.input"])).encode()
        start_response("200 OK", [("Content-Length", str(len(got)))])
        return [got]


BODY = b"line one\nline two\nlast"
READS = {
    "readline": (
        lambda f: [f.readline(), f.readline(4), f.readline()],
        [b"line one\n", b"line", b" two\n"],
    ),
    "readlines": (lambda f: f.readlines(), [b"line one\n", b"line two\n", b"last"]),
    "iter": (lambda f: list(f), [b"line one\n", b"line two\n", b"last"]),
    "read_sized": (
        lambda f: [f.read(3), f.read(100), f.read()],
        [b"lin", BODY[3:], b""],
    ),
}


@pytest.mark.parametrize("how", sorted(READS))
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_wsgi_input_reading_calls(how, chunked):
    read, expected = READS[how]
    if chunked:
        framed = b"".join(
            b"%x\r\n%s\r\n" % (len(part), part) for part in (BODY[:5], BODY[5:])
        )
        data = request(
            b"POST", b"1.1", b"Transfer-Encoding: chunked", body=framed + b"0\r\n\r\n"
        )
    else:
        data = request(b"POST", b"1.1", b"Content-Length: %d" % len(BODY), body=BODY)
    _, body = head_and_body(answer(Reader(read), data))
    assert body == repr(expected).encode()


@pytest.mark.timeout(30)
def test_wsgi_max_connections_reached_waits_in_the_backlog_then_serves():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    conf = make_conf(wsgi_max_connections=2)
    with running(conf, app) as server:
        idle = [connect(server), connect(server)]  # the two allowed, idle
        waiting = connect(server)  # in the kernel's backlog: not served yet
        waiting.sendall(request())
        waiting.settimeout(0.5)
        with pytest.raises(TimeoutError):
            waiting.recv(1)
        idle[0].close()  # room: the backlog's connection is accepted and served
        assert read_until_closed(waiting, timeout=10).endswith(b"ok")
        for sock in (idle[1], waiting):
            sock.close()
