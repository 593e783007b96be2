"""The threads connection scheduler: one selector thread, a pool of real threads.

A connection holds a pool thread only while a request is read and served. Until
its request head is whole it waits in a ``selectors`` selector, owned by one
thread that accepts, reads the bytes of half-sent heads without blocking (into
the connection's parser), runs the TLS handshakes, and closes connections whose
head deadline or keep-alive timeout passed. A connection whose head is whole is
queued for the pool; after its response it comes back to the selector (or, with
a pipelined request already parsed, goes back to the end of the queue, so one
busy client cannot hold a thread).

Nothing here imports eventlet: under ``WSGISVC_BACKEND=threading`` the process
runs unpatched.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import queue
import selectors
import socket
import ssl
import threading
import time

from wsgisvc.http import listeners
from wsgisvc.http.body import DRAIN_LIMIT
from wsgisvc.http.core import RECV_SIZE, After, Connection, Core

LOG = logging.getLogger(__name__)

_RETIRE = object()  # queued to make one pool thread exit


class ThreadPool:
    """Real threads taking connections from one queue; resizable.

    No thread exists before :meth:`start` (the pool is built before the
    launcher forks, and threads do not survive a fork).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: set[threading.Thread] = set()
        self._retiring = 0
        self._serve = None

    def start(self, serve) -> None:
        self._serve = serve
        self.resize(self.size)

    def resize(self, size: int) -> None:
        """Start or retire threads until ``size`` run (once started)."""
        with self._lock:
            self.size = size
            if self._serve is None:
                return
            running = len(self._threads) - self._retiring
            for _ in range(size - running):
                thread = threading.Thread(
                    target=self._run, name="wsgi-pool", daemon=True
                )
                self._threads.add(thread)
                thread.start()
            for _ in range(running - size):
                self._retiring += 1
                self._work.put(_RETIRE)

    def free(self) -> int:
        """Threads neither serving nor owed a queued connection."""
        return self.size - self.busy - self._work.qsize()

    def submit(self, conn: Connection) -> None:
        self._work.put(conn)

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self.busy == 0, timeout)

    def _run(self) -> None:
        work = self._work
        while True:
            conn = work.get()
            if conn is _RETIRE:
                with self._lock:
                    self._retiring -= 1
                    self._threads.discard(threading.current_thread())
                return
            with self._lock:
                self.busy += 1
            try:
                self._serve(conn)  # handles its own errors; this thread lives on
            finally:
                del conn  # an idle thread must not keep its last connection alive
                with self._lock:
                    self.busy -= 1
                    if not self.busy:
                        self._idle.notify_all()


def make_slots(size: int) -> ThreadPool:
    return ThreadPool(size)


class _Waiting:
    """A connection parked in the selector: TLS state and its deadline.

    Its deadline's heap entry may outlive its parking (the heap is cleaned
    lazily): once unparked (``seq`` -1), it holds neither socket nor
    connection, so a closed connection is freed at once.
    """

    __slots__ = (
        "conn",
        "sock",
        "address",
        "handshaking",
        "deadline",
        "seq",
        "dropped",
    )

    def __init__(self, sock, address, handshaking: bool, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.conn: Connection | None = None
        self.handshaking = handshaking
        self.deadline = deadline
        self.seq = 0
        self.dropped: int | None = None  # lingering: bytes dropped so far


class Scheduler:
    """Accepts on ``listener``; parks connections in a selector; serves on threads."""

    multithread = True

    def __init__(
        self, core: Core, name: str, pool: ThreadPool, max_connections: int, tls=None
    ) -> None:
        self.core = core
        self.name = name
        self.pool = pool
        self.max_connections = max_connections
        self._context: ssl.SSLContext | None = tls[1] if tls else None
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # a full buffer wakes it all the same
        self._returned: collections.deque = collections.deque()
        self._woken = False
        self._deadlines: list = []
        self._seq = itertools.count()
        self._live = 0  # connections accepted and not closed
        self._live_lock = threading.Lock()
        self._listener = None
        self._accepting = False
        self._stopping = False
        self._close_idle_at: float | None = None
        self._thread: threading.Thread | None = None
        self._errors = listeners.AcceptErrors(LOG, name)
        self._retry_accept_at = 0.0
        self._capped = False  # not watching the listener: max_connections open
        self._full_since: float | None = None  # no pool thread free since

    # --- the contract wsgi.Server uses ----------------------------------------------

    def start(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._selector.register(listener, selectors.EVENT_READ, listener)
        self._accepting = True
        self.pool.start(self._serve)
        self._thread = threading.Thread(
            target=self._loop, name=f"{self.name}-selector", daemon=True
        )
        self._thread.start()

    def stop_accepting(self) -> None:
        """Stop accepting; returns once the selector no longer watches the
        listener (the caller closes it next)."""
        done = threading.Event()
        self._returned.append(("stop", done))
        self._wake()
        if self._thread is not None and self._thread.is_alive():
            done.wait(5)

    def close_idle(self, grace: float) -> None:
        self._returned.append(("close_idle", time.monotonic() + grace))
        self._wake()

    def wait(self) -> None:
        """Until every connection is done and the selector thread ended."""
        if self._thread is not None:
            self._thread.join()
        self.pool.wait_idle()

    @property
    def connections(self) -> int:
        return self._live

    def connection_states(self) -> list[str]:
        """One line per connection waiting in the selector, and the serving."""
        try:
            keys = list(self._selector.get_map().values())
        except (RuntimeError, ValueError):  # changed meanwhile, or closed
            keys = []
        lines = [f"  {self.pool.busy} being served"]
        for key in keys:
            waiting = key.data
            if not isinstance(waiting, _Waiting) or waiting.seq == -1:
                continue
            conn = waiting.conn
            if waiting.handshaking or conn is None:
                lines.append("  (TLS handshake)")
            elif waiting.dropped is not None:
                lines.append(f"  {conn.client_ip or 'unix'}: lingering")
            else:
                state = "request" if conn.parser.begun else "idle"
                lines.append(f"  {conn.client_ip or 'unix'}: {state}")
        return lines

    # --- pool threads ----------------------------------------------------------------

    def _serve(self, conn: Connection) -> None:
        """Serve one request (a pool thread); then hand the connection on."""
        try:
            after = conn.serve()
        except BaseException:  # SystemExit too: a pool thread outlives any app
            LOG.exception("%s: error serving %s", self.name, conn.client_ip)
            after = conn.end(linger=False)
        if after is After.CLOSE:
            self._closed()
            return
        if after is After.KEEP and (
            conn.parser.head_ready or conn.parser.error is not None
        ):
            self.pool.submit(conn)  # pipelined: to the end of the line
            return
        self._returned.append((after, conn))
        self._wake()

    def _closed(self) -> None:
        """A connection is gone: the selector thread may wait for that (the
        last one, when stopping; room under ``max_connections``).

        Called on pool threads too. No close is missed: the selector thread
        sets ``_capped`` before it counts again, in ``_accept_again``.
        """
        with self._live_lock:
            self._live -= 1
            live = self._live
        if (self._stopping and live == 0) or (
            self._capped and live < self.max_connections
        ):
            self._wake()

    def _wake(self) -> None:
        """Wake the selector thread, once until it has drained the wake-ups:
        under load many connections come back between two of its rounds."""
        if self._woken:
            return
        self._woken = True
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # already woken (buffer full), or shutting down

    # --- the selector thread ---------------------------------------------------

    def _loop(self) -> None:
        selector = self._selector
        heartbeat = self.core.heartbeat
        try:
            while not (self._stopping and self._live == 0):
                if heartbeat is not None:
                    heartbeat.beat()
                for key, _ in selector.select(self._timeout()):
                    if key.data is None:
                        self._drain_wakeups()
                    elif key.data is self._listener:
                        self._accept()
                    else:
                        self._readable(key.data)
                self._handle_returned()
                self._expire()
                self._accept_again()
        except Exception as exc:  # nothing accepts any more: let the process go
            LOG.exception("%s: the selector thread failed", self.name)
            self.core.server.accept_failed(exc)
        finally:
            if heartbeat is not None:
                heartbeat.release()
            for key in list(selector.get_map().values()):
                if isinstance(key.data, _Waiting):
                    self._close_waiting(key.data)
            selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _timeout(self) -> float | None:
        now = time.monotonic()
        next_at = self._deadlines[0][0] if self._deadlines else None
        heartbeat = self.core.heartbeat
        beat_at = None if heartbeat is None else now + heartbeat.interval
        for at in (self._close_idle_at, self._retry_accept_at or None, beat_at):
            if at is not None and (next_at is None or at < next_at):
                next_at = at
        return None if next_at is None else max(0.0, next_at - now)

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        # After reading, before _handle_returned: what came back before this
        # line is handled next; what comes back after it writes a new byte.
        self._woken = False

    def _handle_returned(self) -> None:
        returned = self._returned
        while returned:
            what, arg = returned.popleft()
            if what is After.KEEP:
                arg.sock.setblocking(False)  # the core left it blocking
                self._park(_Waiting(arg.sock, None, False, arg.idle_deadline()), arg)
            elif what is After.LINGER:
                arg.sock.setblocking(False)
                waiting = _Waiting(arg.sock, None, False, arg.linger_until)
                waiting.dropped = 0
                self._park(waiting, arg)
            elif what == "stop":
                self._stopping = True
                self._pause_accepting()
                self._accepting = False
                arg.set()
            elif what == "close_idle":
                self._close_idle_at = arg
        if self._close_idle_at is not None and time.monotonic() >= self._close_idle_at:
            self._close_idle_at = None
            for key in list(self._selector.get_map().values()):
                waiting = key.data
                if not isinstance(waiting, _Waiting) or waiting.seq == -1:
                    continue
                if waiting.conn is not None and not waiting.handshaking:
                    # A request may be in the socket, its readiness not yet
                    # seen: read it first, or closing would reset it.
                    self._readable(waiting)
                if waiting.seq != -1 and not (
                    waiting.conn is not None and waiting.conn.parser.begun
                ):
                    self._close_waiting(waiting)

    def _park(self, waiting: _Waiting, conn: Connection | None) -> None:
        waiting.conn = conn
        self._set_deadline(waiting, waiting.deadline)
        try:
            self._selector.register(waiting.sock, selectors.EVENT_READ, waiting)
        except (ValueError, OSError):  # closed meanwhile
            self._close_waiting(waiting, registered=False)

    def _set_deadline(self, waiting: _Waiting, deadline: float) -> None:
        """Close ``waiting`` at ``deadline``: its earlier entry goes stale."""
        waiting.deadline = deadline
        waiting.seq = next(self._seq)
        heapq.heappush(self._deadlines, (deadline, waiting.seq, waiting))

    def _unpark(self, waiting: _Waiting, registered: bool = True) -> None:
        """Out of the selector; its heap entry, stale now, keeps nothing alive."""
        waiting.seq = -1
        if registered:
            try:
                self._selector.unregister(waiting.sock)
            except (KeyError, ValueError):
                pass
        waiting.conn = waiting.sock = None

    def _expire(self) -> None:
        deadlines, now = self._deadlines, time.monotonic()
        while deadlines and deadlines[0][0] <= now:
            _, seq, waiting = heapq.heappop(deadlines)
            if waiting.seq == seq:  # not unparked nor rescheduled since
                self._close_waiting(waiting)
        # A stale entry would wait for its deadline to leave: once they
        # outnumber the parked connections, sweep them out.
        if len(deadlines) > 2 * len(self._selector.get_map()) + 64:
            self._deadlines = [entry for entry in deadlines if entry[2].seq == entry[1]]
            heapq.heapify(self._deadlines)

    def _close_waiting(self, waiting: _Waiting, registered: bool = True) -> None:
        if waiting.seq == -1:
            return
        conn, sock = waiting.conn, waiting.sock
        self._unpark(waiting, registered)
        if conn is not None:
            conn.close()
        else:
            try:
                sock.close()
            except OSError:
                pass
        self._closed()

    # --- accepting --------------------------------------------------------------------

    def _pause_accepting(self) -> None:
        if self._listener is not None:
            try:
                self._selector.unregister(self._listener)
            except (KeyError, ValueError):
                pass

    def _resume_accepting(self) -> None:
        try:
            self._selector.register(
                self._listener, selectors.EVENT_READ, self._listener
            )
        except (KeyError, ValueError, OSError):
            pass

    def _accept(self) -> None:
        """Accept one waiting connection, while connections are under the
        limit and a pool thread is free; with none free, leave them to a
        sibling worker for ``ACCEPT_DEFER``, then take them all.

        One per wake-up, not all that wait: the selector comes back at once if
        more wait, and meanwhile a sibling sharing the listener takes its share.
        """
        now = time.monotonic()
        if self._live >= self.max_connections:
            # New ones wait in the kernel's backlog until one closes (_closed
            # wakes this thread): no timer, no poll.
            self._pause_accepting()
            self._capped = True
            return
        if self.pool.free() <= 0:
            if self._full_since is None:
                self._full_since = now
            if now < self._full_since + listeners.ACCEPT_DEFER:
                self._defer_accepting(self._full_since + listeners.ACCEPT_DEFER)
                return
        else:
            self._full_since = None
        try:
            client, address = self._listener.accept()
        except BlockingIOError:
            self._full_since = None  # none left waiting: the next one is deferred
            return
        except OSError as exc:
            if exc.errno in listeners.CLIENT_ACCEPT_ERRORS:
                return
            if exc.errno in listeners.RESOURCE_ACCEPT_ERRORS:
                self._errors.resource_error(exc)
                self._defer_accepting(time.monotonic() + listeners.RESOURCE_BACKOFF)
                return
            self._accept_failed(exc)
            return
        except Exception as exc:
            self._accept_failed(exc)
            return
        self._errors.accepted()
        with self._live_lock:
            self._live += 1
        self._admit(client, address)

    def _accept_again(self) -> None:
        """Watch the listener again: room under the cap, or a deferral ended."""
        if self._capped:
            if self._live < self.max_connections:
                self._capped = False
                if self._accepting:
                    self._resume_accepting()
        elif self._accepting and self._retry_accept_at:
            if time.monotonic() >= self._retry_accept_at:
                self._retry_accept_at = 0.0
                self._resume_accepting()

    def _defer_accepting(self, at: float) -> None:
        """Stop watching the listener until ``at``, or it stays ready."""
        self._pause_accepting()
        self._retry_accept_at = at

    def _accept_failed(self, exc: Exception) -> None:
        """The listener broke: stop watching it, serve what is open, and let
        the process go (``Server.accept_failed``)."""
        LOG.error("%s: accept() failed: %r", self.name, exc)
        self._pause_accepting()
        self._accepting = False
        self.core.server.accept_failed(exc)

    def _admit(self, client: socket.socket, address) -> None:
        client.setblocking(False)
        deadline = time.monotonic() + self.core.header_timeout
        if self._context is not None:
            try:
                client = self._context.wrap_socket(
                    client, server_side=True, do_handshake_on_connect=False
                )
            except (OSError, ValueError):
                client.close()
                self._closed()
                return
            self._park(_Waiting(client, address, True, deadline), None)
            return
        self._park(
            _Waiting(client, address, False, deadline),
            Connection(self.core, client, address),
        )

    # --- reading heads ---------------------------------------------------------------

    def _readable(self, waiting: _Waiting) -> None:
        sock = waiting.sock
        if waiting.dropped is not None:
            self._drop(waiting)
            return
        if waiting.handshaking:
            try:
                sock.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except (OSError, ValueError) as exc:
                LOG.debug(
                    "%s: TLS handshake with %s failed: %s",
                    self.name,
                    waiting.address,
                    exc,
                )
                self._close_waiting(waiting)
                return
            waiting.handshaking = False
            waiting.conn = Connection(self.core, sock, waiting.address)
        conn = waiting.conn
        began = conn.parser.begun
        while True:
            try:
                data = sock.recv(RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return self._reschedule(waiting, began)
            except OSError:
                self._close_waiting(waiting)
                return
            ready = conn.receive(data)
            if conn.closed:
                waiting.conn = None  # receive() closed (and answered) it
                self._close_waiting(waiting)
                return
            if ready:
                break
            if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                return self._reschedule(waiting, began)
        self._unpark(waiting)
        self.pool.submit(conn)

    def _drop(self, waiting: _Waiting) -> None:
        """A lingering connection: drop what arrives; close at its end or limit."""
        while True:
            try:
                data = waiting.sock.recv(RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError:
                data = b""
            waiting.dropped += len(data)
            if not data or waiting.dropped > DRAIN_LIMIT:
                self._close_waiting(waiting)
                return

    def _reschedule(self, waiting: _Waiting, began: bool) -> None:
        """The first byte of a keep-alive request moves the deadline to the head's."""
        conn = waiting.conn
        if not began and conn.parser.begun and conn.deadline is not None:
            self._set_deadline(waiting, conn.deadline)
