"""A paste app the functional tests mount at /test next to the sample API.

``/test/pool`` answers the serving worker's pool size and pid, and what it
sees of ``LISTEN_FDS`` (nothing: the parent took it out of the environment).

``/test/version`` answers the version this generation of the app loaded: the
contents of the file ``$WSGISVC_TEST_VERSION_FILE`` when the paste app was
built (an upgrade test changes the file between two generations), also in an
``X-Test-Version`` header.

``/test/slow?ms=N&marker=PATH`` creates PATH when the request starts (so a test
can wait for "in flight" instead of sleeping), sleeps N ms, answers the pid.

``/test/stream?release=PATH`` sends its head and a first piece of body (no
Content-Length: chunked), then its last piece once PATH exists: a response in
flight for as long as the test wants; ``X-Pid`` says which process serves it.

``/test/grow?mib=N`` keeps N more MiB resident in the serving worker (for the
memory recycling tests), answers the pid.

``/test/hold-gil`` backtracks in a regular expression for hours, holding the
GIL: nothing else of the worker's Python runs (a stuck worker, on both
backends). ``/test/block-loop?seconds=N`` stops the worker's loop for N
seconds with the GIL free: on eventlet the request sleeps unpatched (the hub
blocked; answered after N s); on threads the selector thread's next turn
sleeps N s (answered at once; meanwhile the worker accepts and reads nothing).
"""

import json
import os
import re
import urllib.parse

from wsgisvc import backend

_kept: list[bytes] = []  # what /test/grow made resident, kept for good


def test_app(environ, start_response):
    if environ.get("PATH_INFO") == "/pool":
        server = environ["wsgisvc.server"]
        return _json(
            start_response,
            {
                "pool_size": server.pool.size,
                "pid": os.getpid(),
                "listen_fds": os.environ.get("LISTEN_FDS"),
            },
        )
    if environ.get("PATH_INFO") == "/version":
        return _json(
            start_response,
            {"version": _version, "pid": os.getpid()},
            [("X-Test-Version", _version or "")],
        )
    if environ.get("PATH_INFO") == "/grow":
        mib = int(urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))["mib"][0])
        _kept.append(b"x" * (mib * 1024 * 1024))  # written, so resident
        return _json(start_response, {"pid": os.getpid()})
    if environ.get("PATH_INFO") == "/stream":
        return stream_app(environ, start_response)
    if environ.get("PATH_INFO") == "/hold-gil":
        hold_the_gil()
    if environ.get("PATH_INFO") == "/block-loop":
        seconds = float(urllib.parse.parse_qs(environ["QUERY_STRING"])["seconds"][0])
        if backend.NAME == "eventlet":
            block_the_hub(seconds)
        else:
            block_the_selector(environ["wsgisvc.server"], seconds)
        return _json(start_response, {"pid": os.getpid()})
    return slow_app(environ, start_response)


def hold_the_gil():
    re.match(r"(a+)+$", "a" * 40 + "b")


def block_the_hub(seconds: float) -> None:
    backend.os_sleep(seconds)


def block_the_selector(server, seconds: float) -> None:
    """The selector thread's next turn sleeps ``seconds``, then goes on."""
    scheduler = server._scheduler

    def selector_blocked():
        del scheduler._expire  # once: the class's method from now on
        backend.os_sleep(seconds)
        scheduler._expire()

    scheduler._expire = selector_blocked
    scheduler._wake()


def stream_app(environ, start_response):
    release = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))["release"][0]
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("X-Pid", str(os.getpid()))]
    )
    yield b"first\n"
    while not os.path.exists(release):
        backend.sleep(0.01)
    yield b"last\n"


def _json(start_response, document, headers=()):
    body = json.dumps(document).encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *headers,
        ],
    )
    return [body]


def slow_app(environ, start_response):
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    marker = query.get("marker", [None])[0]
    if marker:
        with open(marker, "w") as handle:
            handle.write(str(os.getpid()))
    backend.sleep(int(query.get("ms", ["0"])[0]) / 1000.0)
    return _json(start_response, {"pid": os.getpid()})


_version: str | None = None


def factory(global_conf, **local_conf):
    global _version
    path = os.environ.get("WSGISVC_TEST_VERSION_FILE")
    if path:
        with open(path) as handle:
            _version = handle.read().strip()
    return test_app
