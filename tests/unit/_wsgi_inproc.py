"""In-process helpers for the WSGI server tests.

The server runs in the pytest process (nothing is monkey patched), on either
connection scheduler: the ``scheduler`` fixture (import it into a test module)
runs every test of the module once per backend. Clients here use eventlet's
green sockets, so a blocking call in the test yields to the hub, which runs the
eventlet scheduler's greenthreads meanwhile; the threads scheduler runs on its
own threads.
"""

from __future__ import annotations

import contextlib

import pytest

# isort: off
import wsgisvc  # noqa: F401  (first: filters eventlet's deprecation warnings)
import eventlet

# isort: on
from eventlet.green import socket as green_socket
from eventlet.green.http import client as green_http
from oslo_config import cfg

from wsgisvc import backend, config, wsgi

SCHEDULERS = ("eventlet", "threading")

GOOD_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module", params=SCHEDULERS, autouse=True)
def scheduler(request):
    """Every test of a module that imports this fixture, on both schedulers:
    ``wsgi.Server`` picks its scheduler from ``wsgisvc.backend.NAME``."""
    saved, backend.NAME = backend.NAME, request.param
    try:
        yield request.param
    finally:
        backend.NAME = saved


def make_conf(**overrides) -> cfg.ConfigOpts:
    """A fresh ConfigOpts with every wsgisvc option, parsed from nothing."""
    conf = cfg.ConfigOpts()
    config.register_opts(conf)
    # Grouped options share their OptGroup (and its overrides) across every
    # ConfigOpts they are registered on: forget what earlier tests set.
    conf.reset()
    conf([], project="wsgisvc-test", default_config_files=[], default_config_dirs=[])
    for name, value in overrides.items():
        group = None
        if "." in name:
            group, name = name.split(".", 1)
        conf.set_override(name, value, group=group)
    return conf


@contextlib.contextmanager
def running(conf: cfg.ConfigOpts, app, host: str = "127.0.0.1", **kwargs):
    """A started Server on ``host``:0 that is stopped and waited for on exit."""
    server = wsgi.Server(conf, "test", app, host, 0, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        with eventlet.Timeout(10):
            server.wait()


def connect(server: wsgi.Server, timeout: float = 5.0):
    sock = green_socket.create_connection((server.host, server.port), timeout=timeout)
    return sock


def read_until_closed(sock, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def read_response(sock, timeout: float = 5.0) -> bytes:
    """One response with a Content-Length body from a keep-alive connection."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def raw(server: wsgi.Server, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a new connection; return all bytes until the close."""
    sock = connect(server, timeout)
    try:
        sock.sendall(data)
        return read_until_closed(sock, timeout)
    finally:
        sock.close()


def get(
    server: wsgi.Server, path: str = "/", method: str = "GET", body=None, headers=None
):
    """One request with eventlet's green http.client: (status, headers, body)."""
    conn = green_http.HTTPConnection(server.host, server.port, timeout=10)
    try:
        headers = headers or {}
        chunked = headers.get("Transfer-Encoding") == "chunked"
        conn.request(method, path, body=body, headers=headers, encode_chunked=chunked)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def hello_app(environ, start_response):
    body = b"hello\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
    return [body]


class RecordingApp:
    """Answers 200 and remembers each environ, to prove a request got through."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, environ, start_response):
        self.calls.append(environ)
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]


def sleepy_app(environ, start_response):
    """Sleeps ?s=seconds cooperatively, then answers 200."""
    seconds = float(environ.get("QUERY_STRING", "s=0").split("=", 1)[1] or 0)
    eventlet.sleep(seconds)
    start_response("200 OK", [("Content-Length", "5")])
    return [b"slept"]
