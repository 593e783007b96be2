"""The request corpus (tests/unit/_http_corpus.py) replayed over real sockets,
on both schedulers.

A valid case must reach an echo application exactly as its expected parse
says (method, path, query, version, the headers in the environ, the body),
request after request; an invalid one must be a 4xx and a close, never seen
by the application, with the server serving the next connection.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.unit._http_corpus import INVALID, MAX_LINE, VALID, Invalid, Seen, Valid
from tests.unit._wsgi_inproc import (  # noqa: F401  (scheduler: a fixture)
    GOOD_REQUEST,
    connect,
    make_conf,
    read_until_closed,
    running,
    scheduler,
)

_ENVIRON_HEADERS = ("CONTENT_TYPE", "CONTENT_LENGTH")


def seen_of(environ: dict, body: bytes) -> Seen:
    """What the application saw, in the corpus's terms."""
    path = environ["PATH_INFO"]
    raw_path = environ.get("RAW_PATH_INFO", path)
    return Seen(
        method=environ["REQUEST_METHOD"],
        path=path,
        version=environ["SERVER_PROTOCOL"].removeprefix("HTTP/"),
        query=environ.get("QUERY_STRING"),
        headers={
            k: v
            for k, v in environ.items()
            if k.startswith("HTTP_") or k in _ENVIRON_HEADERS
        },
        body=body,
        raw_path=None if raw_path == path else raw_path,
    )


class EchoApp:
    """Answers 200 with what it saw in an ``X-Echo`` header (base64 JSON, so
    HEAD answers carry it too), and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        seen = seen_of(environ, environ["wsgi.input"].read())
        echo = dict(vars(seen), body=seen.body.decode("latin-1"))
        encoded = base64.b64encode(json.dumps(echo).encode()).decode()
        start_response("200 OK", [("Content-Length", "0"), ("X-Echo", encoded)])
        return [b""]


def echoed(head: bytes) -> Seen:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"x-echo":
            echo = json.loads(base64.b64decode(value.strip()))
            return Seen(**dict(echo, body=echo["body"].encode("latin-1")))
    raise AssertionError(f"no X-Echo in {head!r}")


def read_head(sock, buffered: bytes) -> tuple[bytes, bytes]:
    """The next final response head (1xx skipped) and the bytes after it;
    b"" as the head when the server closed first."""
    data = buffered
    while True:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                assert not data, f"the server closed inside a response: {data!r}"
                return b"", b""
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 1"):
            return head, data


@pytest.fixture(scope="module")
def app():
    return EchoApp()


@pytest.fixture(scope="module")
def server(app, scheduler):  # noqa: F811  (a server per scheduler)
    with running(make_conf(max_header_line=MAX_LINE), app) as srv:
        yield srv


def _cases(cases):
    return [
        pytest.param(
            case,
            id=case.name,
            marks=[pytest.mark.xfail(strict=True, reason=case.xfail)]
            if case.xfail
            else [],
        )
        for case in cases
    ]


def test_corpus_is_as_large_as_the_issue_asks():
    assert len(VALID) >= 40 and len(INVALID) >= 60
    names = [c.name for c in VALID + INVALID]
    assert len(names) == len(set(names)), "two cases share a name"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", _cases(VALID))
def test_valid_request_is_served_as_parsed(server, case: Valid):
    sock = connect(server)
    try:
        sock.sendall(case.data)
        rest = b""
        for expected in case.requests:
            head, rest = read_head(sock, rest)
            assert head.startswith(b"HTTP/1.1 200 "), (expected, head)
            assert echoed(head) == expected
        if case.closes:
            assert rest + read_until_closed(sock) == b"", "answered past the close"
        else:
            sock.sendall(GOOD_REQUEST)  # still framed: the next request is served
            head, rest = read_head(sock, rest)
            assert head.startswith(b"HTTP/1.1 200 "), head
    finally:
        sock.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", _cases(INVALID))
def test_invalid_request_is_4xx_and_close(server, app, case: Invalid):
    before = app.calls
    sock = connect(server)
    try:
        sock.sendall(case.data)
        answer = read_until_closed(sock)  # returns only once the server closed
    finally:
        sock.close()

    assert answer.startswith(b"HTTP/1.1 " + case.status), answer
    assert answer.split(b" ", 2)[1][:1] in b"45", answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Connection: close" in head, answer
    length = int(head.lower().partition(b"content-length:")[2].split(b"\r")[0])
    assert len(body) == length, f"more than one answer: {answer!r}"
    assert app.calls == before, "the application saw an invalid request"

    sock = connect(server)  # the server lives on
    try:
        sock.sendall(GOOD_REQUEST)
        head, _ = read_head(sock, b"")
        assert head.startswith(b"HTTP/1.1 200 "), head
    finally:
        sock.close()
