"""wsgisvc.gunicorn.Worker holds a response to the application's Content-Length
(issue 24), as the core does (tests/unit/test_wsgi_http_hardening.py).

gunicorn cut a longer body at the length silently, kept the connection after
a shorter one (the next response read into it) and sent both of two
Content-Length headers. One master serves every case of this module; each
case is a lying answer followed by a request on the same connection.
"""

from __future__ import annotations

import re
import socket

import pytest

from tests.functional._gunicorn_util import gunicorn_master
from tests.helpers import wait_for
from tests.unit._http_cases import HOST, request_bytes, split_responses

FILE = b"0123456789"  # the /file cases' file: 10 bytes

LIES = {  # /lie's query (see _gunicorn_app.py), and what the client gets
    "declared_5_sent_ok": ("length=5&body=ok", "500"),
    "declared_2_sent_hello": ("length=2&body=hello", "500"),
    "list_longer": ("length=3&body=he,llo", "500"),
    "list_shorter": ("length=9&body=he,llo", "500"),
    "stream_first_piece_longer": ("length=2&shape=stream&body=hello", "500"),
    "stream_empty": ("length=5&shape=stream", "500"),
    "stream_longer": ("length=3&shape=stream&body=he,llo", "cut to 3"),
    "stream_shorter": ("length=9&shape=stream&body=he,llo", "closed"),
    "stream_endless": ("length=3&shape=endless&body=he,llo", "cut to 3"),
    "write_longer": ("length=3&shape=write&body=he,llo", "cut to 3"),
    "write_shorter": ("length=9&shape=write&body=he,llo", "closed"),
    "two_lengths": ("length=2&length=40&body=ok", "500"),
    "two_equal_lengths": ("length=2&length=2&body=ok", "one"),
    "file_shorter": ("length=20", "file closed"),
    "head_without_its_body": ("length=5", "head"),
    "304_with_a_length": ("length=5&status=304", "304"),
}


KEPT = {  # the status, Content-Length and body of answers framed as they said
    "cut to 3": (b"200", b"3", b"hel"),
    "one": (b"200", b"2", b"ok"),
    "head": (b"200", b"5", b""),
    "304": (b"304", b"5", b""),
}


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("gunicorn")
    (tmp_path / "ten.bin").write_bytes(FILE)
    with gunicorn_master(tmp_path, "-w", "1") as master:
        master.file = tmp_path / "ten.bin"
        yield master


def exchange(master, first: bytes) -> bytes:
    """``first``, then a GET /pid on the same connection; all until the close."""
    then = request_bytes(b"GET /pid HTTP/1.1", HOST, b"Connection: close")
    with socket.create_connection(("127.0.0.1", master.port), timeout=10) as sock:
        sock.sendall(first + then)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def new_log(master, since: int, marker: str) -> str:
    """The log written since offset ``since``, once ``marker`` is in it."""
    return wait_for(lambda: marker in master.log()[since:] and master.log()[since:])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(LIES))
def test_a_body_that_belies_its_content_length_never_misframes_the_next(master, case):
    """A body known to disagree before the head, or two lengths that differ,
    is gunicorn's 500; a longer streamed body is cut and logged; a shorter
    one (a file too) ends the connection; no answer is read into another."""
    query, expected = LIES[case]
    if expected == "file closed":
        target = b"/file?path=%s&%s" % (str(master.file).encode(), query.encode())
    else:
        target = b"/lie?" + query.encode()
    method = b"HEAD" if expected == "head" else b"GET"
    line = method + b" " + target
    since = len(master.log())
    data = exchange(master, request_bytes(line + b" HTTP/1.1", HOST))
    answers = split_responses(data, bodiless_first=expected in ("head", "304"))
    (status, lengths, body), *rest = answers
    if expected == "500":
        assert status == b"HTTP/1.1 500 Internal Server Error" and rest == []
        log = new_log(master, since, f'"{line.decode()} HTTP/1.1" 500')
        # gunicorn 27 names the method too, 23 the target only
        errors = re.findall(r"Error handling request (?:GET )?(\S+)", log)
        assert errors == [target.decode()], log
    elif expected in ("closed", "file closed"):
        sent = FILE if expected == "file closed" else b"hello"
        assert status.split(b" ")[1] == b"200" and body == sent and rest == []
        assert int(lengths[0]) > len(sent)
        if expected == "file closed":
            log = new_log(master, since, "the file ended 10 bytes short of 20")
        else:
            log = new_log(master, since, f"of 5 bytes ({line.decode()})")
        assert log.count("Error handling request") + log.count("Socket error") == 1
    else:
        code, length, sent = KEPT[expected]
        assert (status.split(b" ")[1], lengths, body) == (code, [length], sent)
        ((then, _, pid),) = rest
        assert then == b"HTTP/1.1 200 OK" and pid.isdigit(), rest
        log = new_log(master, since, '"GET /pid HTTP/1.1" 200')
        if expected == "cut to 3":
            assert log.count(f"past the Content-Length (3) of {line.decode()}") == 1
        assert "Error" not in log, log
