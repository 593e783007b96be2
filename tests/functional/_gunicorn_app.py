"""A small WSGI app for the gunicorn worker tests, loaded through PasteDeploy.

Each route shows one property of the worker from the inside:

* ``/pid``               which worker process answered
* ``/sleep?ms=N``        a cooperative wait (``time.sleep``, green once patched)
* ``/gather?n=N&ms=M``   holds each request until N are in flight at once, then
                         sleeps M ms: proves N concurrent requests without relying
                         on the client starting them all within M ms
* ``/stats``             in-flight count now and its peak in this process
* ``/block?s=N``         a call that never yields (the unpatched ``time.sleep``)
* ``/echo``              the request body's length (reads ``wsgi.input``)
* ``/error``             an app exception, for gunicorn's error log
* ``/patched``           what eventlet monkey patched in this process
* ``/break-listener``    this worker's listening descriptor pointed at a socket
                         that does not listen (``_accept_breakers``)
* ``/exhaust?s=N``       this worker out of descriptors for N seconds: every
                         accept() meanwhile fails with EMFILE
* ``/file?path=P``       file P (default: this module) through
                         ``wsgi.file_wrapper``; gunicorn sends it with sendfile()
                         (``&length=N``: a Content-Length of N, true or not)
* ``/lie?length=N&shape=S&body=A,B``  200 with each ``length`` as a
                         Content-Length and the pieces A, B as a list, a
                         generator (``stream``), one repeating them for ever
                         (``endless``) or ``write()`` calls
                         (``&status=304`` for another status)

Imported in the worker after ``init_process`` patched it, so ``threading`` here is
green; under an unpatched worker ``/gather`` would block the only thread and fail.
"""

import itertools
import json
import os
import resource
import threading
import time
from urllib.parse import parse_qs

import _accept_breakers  # beside this module, on gunicorn's --pythonpath
import eventlet
import eventlet.patcher

GATHER_TIMEOUT = 30.0

_lock = threading.Condition()
_inflight = 0
_peak = 0


def _enter() -> None:
    global _inflight, _peak
    with _lock:
        _inflight += 1
        _peak = max(_peak, _inflight)
        _lock.notify_all()


def _leave() -> None:
    global _inflight
    with _lock:
        _inflight -= 1


def _gather(count: int) -> bool:
    with _lock:
        return _lock.wait_for(lambda: _inflight >= count, GATHER_TIMEOUT)


def _route(path: str, query: dict, environ) -> tuple[str, object]:
    arg = {key: values[0] for key, values in query.items()}
    if path == "/echo":
        return "200 OK", {"length": len(environ["wsgi.input"].read())}
    if path == "/pid":
        return "200 OK", os.getpid()
    if path == "/sleep":
        time.sleep(int(arg.get("ms", "0")) / 1000.0)
        return "200 OK", {"pid": os.getpid()}
    if path == "/gather":
        gathered = _gather(int(arg["n"]))
        time.sleep(int(arg.get("ms", "0")) / 1000.0)
        return ("200 OK" if gathered else "503 Service Unavailable"), _peak
    if path == "/stats":
        return "200 OK", {"inflight": _inflight, "peak": _peak, "pid": os.getpid()}
    if path == "/block":
        eventlet.patcher.original("time").sleep(float(arg["s"]))
        return "200 OK", "unblocked"
    if path == "/error":
        raise RuntimeError("boom from the gunicorn test app")
    if path == "/break-listener":
        port = int(environ["SERVER_PORT"])
        _accept_breakers.break_listening((environ["SERVER_NAME"], port))
        return "200 OK", os.getpid()
    if path == "/exhaust":
        return "200 OK", _exhaust(float(arg["s"]))
    if path == "/patched":
        mods = ("socket", "thread", "time", "select")
        return "200 OK", {m: eventlet.patcher.is_monkey_patched(m) for m in mods}
    return "404 Not Found", "no such route"


def _exhaust(seconds: float) -> int:
    """Take every descriptor this process may open (its soft limit lowered to
    the highest open one) for ``seconds``; how many were taken."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))
    taken = []
    while True:
        try:
            taken.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            break

    def give_back() -> None:
        for fd in taken:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    eventlet.spawn_after(seconds, give_back)
    return len(taken)


def _lie(query: dict, start_response):
    """An answer whose body may belie its Content-Length (or two of them)."""
    headers = [("Content-Length", length) for length in query.get("length", [])]
    status = query.get("status", ["200"])[0] + " Lie"
    write = start_response(status, headers)
    parts = [part.encode() for part in query.get("body", [""])[0].split(",") if part]
    shape = query.get("shape", ["list"])[0]
    if shape == "write":
        for part in parts:
            write(part)
        return []
    if shape == "endless":
        return itertools.cycle(parts)
    return parts if shape == "list" else (part for part in parts)


def application(environ, start_response):
    """Answer JSON; count this request as in flight while it runs."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if environ["PATH_INFO"] == "/file":
        path = query.get("path", [__file__])[0]
        length = query.get("length", [str(os.path.getsize(path))])[0]
        start_response("200 OK", [("Content-Length", length)])
        return environ["wsgi.file_wrapper"](open(path, "rb"))
    if environ["PATH_INFO"] == "/lie":
        return _lie(query, start_response)
    is_stats = environ["PATH_INFO"] == "/stats"
    if not is_stats:
        _enter()
    try:
        status, payload = _route(environ["PATH_INFO"], query, environ)
    finally:
        if not is_stats:
            _leave()
    body = json.dumps(payload).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]


def app_factory(global_conf, **local_conf):
    """PasteDeploy ``paste.app_factory`` entry."""
    return application
