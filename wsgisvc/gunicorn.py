"""The gunicorn worker class: wsgisvc's paste pipelines on eventlet, under gunicorn.

gunicorn 26 dropped its eventlet worker. ``wsgisvc.gunicorn.Worker`` brings one back
for eventlet-based APIs, built only on gunicorn's public worker API: it subclasses
``gunicorn.workers.base_async.AsyncWorker`` (the base gunicorn's own gevent worker
uses), so gunicorn's HTTP parser, its request limits (``limit_request_line``,
``limit_request_fields``, ...), its keep-alive loop, access log and error handling
stay in charge; this class only supplies the concurrency: one acceptor greenthread
per listening socket, a greenpool of ``worker_connections`` greenthreads, and a main
loop that heartbeats the arbiter.

Process model, and why each piece sits where it does:

* The arbiter imports this module (to find the class) but never monkey patches and
  never starts a hub. Importing it goes through ``wsgisvc/__init__.py`` first, which
  filters eventlet's known deprecation and fork warnings by their exact text.
* ``init_process()`` runs in the forked worker: it installs a fresh hub and monkey
  patches *before* gunicorn's base loads the app, so the app's imports are green.
* ``preload_app`` is refused (``check_config``): it would import the app, and with
  it unpatched sockets, locks and threads, in the arbiter before any patching.
* The main greenthread calls ``notify()`` every second while the worker lives, so
  gunicorn's ``timeout`` keeps its meaning: a request that blocks the hub without
  yielding stops the heartbeat, and the arbiter aborts and replaces the worker.
* Signals keep gunicorn's meaning: TERM stops accepting and drains in-flight
  requests within ``graceful_timeout``; INT/QUIT exit at once; USR1 reopens logs.
  ``max_requests`` (+ jitter) is counted by the base class, which marks the worker
  not alive after the current request; the acceptors then stop and it drains.
* accept() errors and TLS are handled as in wsgisvc's own schedulers, by the
  same code (``wsgisvc.http.listeners.AcceptErrors``, ``sslutils.wrap`` and
  ``sslutils.handshake_failed``): an operator reads the same lines whichever
  runtime serves. A listener that breaks stops the worker, which the arbiter
  replaces, as a process that cannot accept stops under ``wsgisvc-api``.
* gunicorn cuts a body at the application's Content-Length, but keeps the
  connection after one that ended short of it (the client reads the next
  response into it) and sends every Content-Length header it is given.
  ``load_wsgi()`` wraps the application in :class:`HeldToLength`, which holds
  it to the core's rules (``wsgisvc.http.response``) from outside gunicorn.
* With ``PROMETHEUS_MULTIPROC_DIR`` set, each worker writes the request metrics
  of ``wsgisvc.metrics`` there (counted at gunicorn's access-log call, the one
  place every answered request passes, with gunicorn's own status and time);
  serving and ``mark_process_dead`` are the operator's gunicorn config, as
  prometheus_client documents (doc/source/operations.rst).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable

import eventlet
import eventlet.event
import eventlet.hubs
from eventlet.greenio import GreenSocket
from gunicorn import sock as gunicorn_sock
from gunicorn.workers.base_async import AsyncWorker

from wsgisvc import metrics, sslutils
from wsgisvc.http import listeners

#: Linux's TCP_CORK (None elsewhere: responses then go out uncorked).
_TCP_CORK = getattr(socket, "TCP_CORK", None)
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)

#: Connections accepted in a row before the acceptor yields to the hub. Kept-alive
#: connections stay with the worker that accepted them, so a worker that takes a
#: whole burst serves it alone; yielding after every accept spreads them evenly
#: but, when a burst meets busy workers, admits one connection per hub round and
#: the tail latency soars. A small batch avoids both (doc/source/gunicorn.rst,
#: "Performance", has the measurements; ``wsgisvc.http.scheduling`` why the
#: schedulers yield otherwise).
ACCEPT_BATCH = 4

#: How often the main greenthread heartbeats the arbiter; gunicorn's smallest
#: useful ``timeout`` is a few seconds, so once a second keeps it meaningful.
HEARTBEAT_INTERVAL = 1.0


class _GreenConnection(GreenSocket):
    """A client connection: green, with a working ``sendfile()`` and corked heads.

    * gunicorn answers ``wsgi.file_wrapper`` responses with ``sock.sendfile()``;
      the standard one refuses non-blocking sockets, and every green socket is
      non-blocking underneath, so this one waits in the hub instead.
    * gunicorn writes a response head and its body with two ``sendall()`` calls,
      which on a ``TCP_NODELAY`` socket are two segments (and two wake-ups of
      the client). ``cork_response()`` holds the first two writes back and sends
      them as one; a lone ``send()`` (gunicorn's ``100 Continue``) and the end
      of the request release the cork, so nothing waits for more than that.

    Accepting through this class makes every client connection one of these
    (``GreenSocket.accept`` returns ``type(self)``).
    """

    _corked = False
    _writes_before_uncork = 0

    def cork_response(self) -> None:
        """Coalesce the next two writes (head, first body piece) into one segment."""
        if _TCP_CORK is None or self.fd.family not in _TCP_FAMILIES:
            return  # not Linux, or a Unix socket: nothing to coalesce
        with contextlib.suppress(OSError):  # the peer may be gone already
            self.fd.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 1)
            self._corked, self._writes_before_uncork = True, 2

    def uncork(self) -> None:
        """Send whatever the cork holds, now."""
        if self._corked:
            self._corked = False
            with contextlib.suppress(OSError):  # the peer may be gone already
                self.fd.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 0)

    def send(self, data, flags: int = 0) -> int:
        sent = GreenSocket.send(self, data, flags)
        self.uncork()
        return sent

    def sendall(self, data, flags: int = 0) -> None:
        view, sent = memoryview(data), 0
        while sent < len(view):
            sent += GreenSocket.send(self, view[sent:], flags)
        if self._corked:
            self._writes_before_uncork -= 1
            if not self._writes_before_uncork:
                self.uncork()

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        """``os.sendfile`` from ``offset``; yields to the hub while the peer lags."""
        infd, outfd = file.fileno(), self.fileno()
        if count is None:
            count = os.fstat(infd).st_size - offset
        sent = 0
        while sent < count:
            try:
                chunk = os.sendfile(outfd, infd, offset + sent, count - sent)
            except BlockingIOError:
                eventlet.hubs.trampoline(outfd, write=True)
                continue
            if chunk == 0:  # the file is shorter than the response's length
                raise OSError(
                    errno.EIO, f"the file ended {count - sent} bytes short of {count}"
                )
            sent += chunk
        file.seek(offset + sent)
        return sent


class HeldToLength:
    """A WSGI application held to its own Content-Length, as the core holds it.

    gunicorn's Response is out of a worker's reach; the application is not.
    Two Content-Length headers that differ raise at ``start_response``; equal
    ones are passed on as one. A body known to disagree before gunicorn sends
    the head (a list or tuple, a first piece already longer, an iterator that
    yields nothing) raises before it does: gunicorn answers 500. Bytes past
    the length are not passed on and the iterator is not asked for more
    (logged here). A body that ends short raises after its last piece:
    gunicorn's path for a response that fails after its head, which logs it
    and closes the connection. HEAD, 1xx, 204 and 304 answers send no body,
    so their length is not held against one. A ``wsgi.file_wrapper`` body
    goes to gunicorn's sendfile, which sends no more than the length, and
    :meth:`_GreenConnection.sendfile` raises if the file has less.
    """

    def __init__(self, app: Callable, log) -> None:
        self.app = app
        self.log = log  # gunicorn's

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        return _HeldAnswer(self, environ, start_response).answer()


class _HeldAnswer:
    """One answer through :class:`HeldToLength`."""

    def __init__(self, held: HeldToLength, environ: dict, start_response) -> None:
        self.held = held
        self.environ = environ
        self._start_response = start_response
        self._write = None
        self.length: int | None = None  # the body's, when there is one
        self.sent = 0
        self.started = False  # gunicorn sends the head with the first piece
        self.dropped = 0

    def start_response(self, status, headers, exc_info=None):
        lengths = [int(v) for n, v in headers if n.lower() == "content-length"]
        if len(set(lengths)) > 1:
            raise ValueError(f"two Content-Lengths, {lengths[0]} and {lengths[-1]}")
        if len(lengths) > 1:
            first = next(h for h in headers if h[0].lower() == "content-length")
            headers = [
                h for h in headers if h is first or h[0].lower() != "content-length"
            ]
        code = str(status)[:3]
        no_body = self.environ["REQUEST_METHOD"] == "HEAD" or code in ("204", "304")
        bodied = lengths and not no_body and code[:1] != "1"
        self.length = lengths[0] if bodied else None  # exc_info: the new head's
        self._write = self._start_response(status, headers, exc_info)
        return self.write

    def write(self, data: bytes) -> None:
        self._write(self.within(data))

    def within(self, data: bytes) -> bytes:
        """``data`` up to the length: past it, an error while no head went out."""
        length = self.length
        if length is not None and self.sent + len(data) > length:
            if not self.started:
                raise self.belied(f"{len(data)} bytes or more")
            self.dropped += self.sent + len(data) - length
            data = data[: length - self.sent]
        self.sent += len(data)
        self.started = True
        return data

    def belied(self, body: str) -> ValueError:
        method, uri = self.environ["REQUEST_METHOD"], self.environ["RAW_URI"]
        return ValueError(
            f"Content-Length {self.length} for a body of {body} ({method} {uri})"
        )

    def answer(self):
        result = self.held.app(self.environ, self.start_response)
        if self.length is None or isinstance(result, self.environ["wsgi.file_wrapper"]):
            return result
        if type(result) in (list, tuple) and not self.started:
            total = sum(map(len, result))
            if total != self.length:
                _close(result)  # gunicorn never sees it
                raise self.belied(f"{total} bytes")
            return result
        return self.pieces(result)

    def pieces(self, result):
        try:
            for data in result:
                yield self.within(data)
                if self.dropped:
                    break
        finally:
            _close(result)
        if self.sent < self.length:
            raise self.belied(f"{self.sent} bytes")  # a 500, or a close
        if self.dropped:
            self.held.log.error(
                "the application sent %d bytes past the Content-Length (%d) of "
                "%s %s: they were not sent",
                self.dropped,
                self.length,
                self.environ["REQUEST_METHOD"],
                self.environ["RAW_URI"],
            )


def _close(result) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


class Worker(AsyncWorker):
    """gunicorn worker: an eventlet greenpool of ``worker_connections`` per process.

    Use it as ``gunicorn -k wsgisvc.gunicorn.Worker`` or, through the
    ``gunicorn.workers`` entry point, ``gunicorn -k egg:wsgisvc-server#eventlet``.
    """

    _ssl_context = None
    _winding_down: eventlet.event.Event
    _app_label = "gunicorn"  # the app label of the request metrics (or --name)

    @classmethod
    def check_config(cls, cfg, log) -> None:
        """Refuse ``preload_app``: the app would be imported unpatched in the arbiter.

        gunicorn calls this in the arbiter before any worker forks; a RuntimeError
        here becomes gunicorn's one-line ``Error: ...`` and exit status 1.
        """
        if cfg.preload_app:
            raise RuntimeError(
                "wsgisvc.gunicorn.Worker does not support preload_app (--preload): "
                "eventlet must monkey patch each worker before the application is "
                "imported, and preloading imports it in the arbiter. Remove --preload."
            )

    def init_process(self) -> None:
        """Give the forked worker its own hub and green stdlib, then load the app.

        Until gunicorn's base installs the worker's signal handlers, the child runs
        the arbiter's, inherited across fork, which would swallow a TERM, INT or
        QUIT meant for this worker (say, a HUP right after boot); monkey patching
        widens that window, so a stop that arrives now is remembered.
        """
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(signum, self._stop_before_boot)
        eventlet.hubs.use_hub()
        eventlet.monkey_patch()
        self._app_label = self.cfg.settings["proc_name"].get() or "gunicorn"
        if metrics.use_environment():
            self._count_answered_requests()
        super().init_process()

    def _count_answered_requests(self) -> None:
        """Count each request where gunicorn logs it: its status and its time."""
        access, app = self.log.access, self._app_label

        def access_and_count(resp, req, environ, request_time):
            # resp.status, not status_code: gunicorn's error answers set only it
            code = int(str(resp.status).split(None, 1)[0])
            metrics.request_counted(app, req.method, code, request_time.total_seconds())
            access(resp, req, environ, request_time)

        self.log.access = access_and_count

    def load_wsgi(self) -> None:
        """Load the application, held to its Content-Length (``HeldToLength``)."""
        super().load_wsgi()
        self.wsgi = HeldToLength(self.wsgi, self.log)

    def _stop_before_boot(self, sig, frame) -> None:
        self.alive = False

    def timeout_ctx(self):
        """Bound the wait for the next request on a kept-alive connection."""
        return eventlet.Timeout(self.cfg.keepalive or None, False)

    def notify(self) -> None:
        """Heartbeat the arbiter; a worker whose arbiter is gone stops serving."""
        super().notify()
        if self.alive and self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            self.alive = False

    # -- signals: anything that may block runs in a greenthread, not the handler --

    def handle_quit(self, sig, frame) -> None:
        eventlet.spawn(super().handle_quit, sig, frame)

    def handle_usr1(self, sig, frame) -> None:
        eventlet.spawn(super().handle_usr1, sig, frame)

    # -- serving --------------------------------------------------------------

    def run(self) -> None:
        """Accept on every listener until told to stop, then drain in-flight work."""
        if self.cfg.is_ssl:
            # Built after monkey patching, so it wraps into green SSL sockets.
            self._ssl_context = gunicorn_sock.ssl_context(self.cfg)
        pool = eventlet.GreenPool(self.worker_connections)
        metrics.track_pool(self._app_label, pool)
        acceptors = [
            eventlet.spawn(self._accept_loop, listener, pool)
            for listener in self.sockets
        ]
        self._winding_down = eventlet.event.Event()
        while self.alive:
            self.notify()
            with eventlet.Timeout(HEARTBEAT_INTERVAL, False):
                self._winding_down.wait()
        for acceptor in acceptors:
            acceptor.kill()
        self._drain(pool)

    def _accept_loop(self, listener, pool: eventlet.GreenPool) -> None:
        """Hand each accepted connection to the pool; stop once the worker winds down.

        ``pool.spawn_n`` waits for a free greenthread when all ``worker_connections``
        are busy, so a saturated worker stops accepting and sibling workers take
        the backlog. After every ``ACCEPT_BATCH`` accepts the loop yields to the
        hub: see ``ACCEPT_BATCH`` for why neither 1 nor "all at once".
        """
        # A duplicate descriptor of our own: closing it when this greenthread ends
        # must not close gunicorn's listener object, which handle() still reads.
        server = _GreenConnection(listener.dup())
        errors = listeners.AcceptErrors(self.log, f"{self._app_label} on {listener}")
        accepted_in_a_row = 0
        try:
            while self.alive:
                accepted = self._accept(server, errors)
                if accepted is None:
                    continue
                pool.spawn_n(self.handle, listener, *accepted)
                accepted_in_a_row += 1
                if accepted_in_a_row >= ACCEPT_BATCH:
                    accepted_in_a_row = 0
                    eventlet.sleep(0)
        except Exception as exc:  # the listener broke: let the arbiter replace us
            self.log.exception(
                "%s cannot accept connections on %s: %r; stopping this worker",
                self._app_label,
                listener,
                exc,
            )
            self.alive = False
            if not self._winding_down.ready():
                self._winding_down.send()
        finally:
            server.close()

    @staticmethod
    def _accept(server: _GreenConnection, errors: listeners.AcceptErrors):
        """One green accept() under the shared accept policy
        (``wsgisvc.http.listeners.AcceptErrors``); None when none came."""
        try:
            accepted = server.accept()
        except OSError as exc:
            backoff = errors.failed(exc)
            if backoff is None:
                raise
            if backoff:
                eventlet.sleep(backoff)
            return None
        errors.accepted()
        return accepted

    def handle(self, listener, client, addr) -> None:
        """Serve one connection through gunicorn's parser and request path.

        TLS is wrapped as the schedulers wrap it (``sslutils.wrap``) and
        handshaken here, in the connection's greenthread, before gunicorn
        reads: where gunicorn's ``do_handshake_on_connect`` puts it either
        way; a failure is logged as on every runtime (``handshake_failed``).
        """
        if self._ssl_context is not None:
            try:
                client = sslutils.wrap(
                    client,
                    self._ssl_context,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                )
                client.do_handshake()
            except OSError as exc:  # ssl.SSLError, a reset
                sslutils.handshake_failed(self.log, self._app_label, addr, exc)
                client.close()
                return
        super().handle(listener, client, addr)

    def handle_request(self, listener_name, req, sock, addr):
        """Serve one request, corked, then let every other connection have its turn.

        The response head and the first piece of body leave as one segment (see
        ``_GreenConnection``): half the segments per small response on loopback.

        A green socket only yields when it would block, so a keep-alive client
        that always has its next request ready would keep the hub to itself and
        starve the others (seconds of tail latency under wrk); one cooperative
        yield per request makes the worker round-robin between connections.

        The base class counts ``max_requests`` and clears ``alive`` itself; waking
        the main greenthread here (not from a signal handler, where touching the
        hub is unsafe) spares a recycled worker up to a heartbeat of accepting
        connections it will only close again.
        """
        corked = isinstance(sock, _GreenConnection)
        if corked:
            sock.cork_response()
        metrics.request_started(self._app_label)
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            metrics.request_ended(self._app_label)
            if corked:
                sock.uncork()
            if not self.alive and not self._winding_down.ready():
                self._winding_down.send()
            eventlet.sleep(0)

    def _drain(self, pool: eventlet.GreenPool) -> None:
        """Wait for in-flight connections, up to ``graceful_timeout``, heartbeating.

        A kept-alive idle connection ends at its ``keepalive`` timeout or after its
        next request (answered with ``Connection: close``), so drains are bounded.
        """
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while pool.running():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.log.warning(
                    "Worker graceful timeout (pid:%s): abandoning %d connection(s)",
                    self.pid,
                    pool.running(),
                )
                return
            self.notify()
            with eventlet.Timeout(min(HEARTBEAT_INTERVAL, remaining), False):
                pool.waitall()


__all__ = ["Worker"]
