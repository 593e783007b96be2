"""The threads connection scheduler: one epoll thread, a pool of real threads.

A connection holds a pool thread only while a request is read and served.
Until its request head is whole it waits in an epoll set (wsgisvc runs on
Linux), armed for one event at a time (``EPOLLONESHOT``), watched by one
thread that accepts, reads the bytes of half-sent heads without blocking (into
the connection's parser), runs the TLS handshakes, and closes connections
whose head deadline or keep-alive timeout passed. A connection whose head is
whole is queued for the pool.

Sockets stay non-blocking from accept to close: the adapter reads and writes
through :class:`_Transport`, which waits in ``poll`` only when a call would
block. After a response the pool thread serves the next request itself when
it is parsed already, or has arrived (it reads first when the client
pipelines, or when the last read filled its buffer), and no other connection
waits for a thread (FIFO: with one waiting, it goes to the end of the line);
otherwise it arms the connection in the epoll set again itself
(``epoll.modify`` is thread-safe): a keep-alive request costs no hand-off
back to the epoll thread and no wake-up of it. Disarmed, a connection is the
pool thread's alone: no event for it reaches the epoll thread until it is
armed again.

Nothing here imports eventlet: under ``WSGISVC_BACKEND=threading`` the process
runs unpatched.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import math
import select
import socket
import ssl
import threading
import time

from wsgisvc import sslutils
from wsgisvc.http import listeners
from wsgisvc.http.core import Connection, Core
from wsgisvc.http.limits import RECV_SIZE
from wsgisvc.http.protocol import After

LOG = logging.getLogger(__name__)


class ThreadPool:
    """Real threads taking connections from one FIFO queue; resizable.

    Sleeping threads are woken one at a time: a connection queued while a
    woken thread has not run yet (it waits for the GIL, which the serving
    threads keep busy) wakes nobody, and a thread that takes a connection
    wakes the next one only while more wait. Woken all at once, each thread
    would wait for the GIL, and take it at every system call that releases
    it (a send, a re-arm): the more threads waiting, the more wake-ups a
    request costs. So under load as many threads serve as take turns with
    the GIL, and they take the next connection without sleeping. A request
    that blocks (out of the GIL) lets a woken thread run at once, which
    wakes another while connections wait: blocking requests still get every
    thread.

    No thread exists before :meth:`start` (the pool is built before the
    launcher forks, and threads do not survive a fork).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.busy = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._work: collections.deque = collections.deque()
        # Each sleeping thread's own lock, held: released, it wakes that one.
        self._sleepers: list[threading.Lock] = []
        self._waking = 0  # woken, not yet back under the lock
        self._threads: set[threading.Thread] = set()
        self._retiring = 0
        self._serve = None

    def start(self, serve) -> None:
        self._serve = serve
        self.resize(self.size)

    def resize(self, size: int) -> None:
        """Start or retire threads until ``size`` run (once started); a
        retiring thread serves what is queued first."""
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
            self._retiring += max(0, running - size)
            while self._sleepers and self._retiring > self._waking:
                self._wake_one()

    def free(self) -> int:
        """Threads neither serving nor owed a queued connection."""
        return self.size - self.busy - len(self._work)

    def submit(self, conn) -> None:
        with self._lock:
            self._work.append(conn)
            if not self._waking:
                self._wake_one()

    def queued(self) -> bool:
        """Whether a connection waits for a thread."""
        return bool(self._work)

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self.busy == 0, timeout)

    def _wake_one(self) -> None:
        """Wake the thread that slept last, if one sleeps (under the lock)."""
        if self._sleepers:
            self._waking += 1
            self._sleepers.pop().release()

    def _run(self) -> None:
        lock, work = self._lock, self._work
        wakeup = threading.Lock()
        wakeup.acquire()
        woken = served = False
        while True:
            with lock:  # one round trip: the request served, the next taken
                if woken:
                    self._waking -= 1
                if served:
                    self.busy -= 1
                    if not self.busy:
                        self._idle.notify_all()
                woken = served = False
                if work:
                    conn = work.popleft()
                    self.busy += 1
                    if work and not self._waking:
                        self._wake_one()
                elif self._retiring:
                    self._retiring -= 1
                    self._threads.discard(threading.current_thread())
                    return
                else:
                    self._sleepers.append(wakeup)
                    conn = None
            if conn is None:
                wakeup.acquire()
                woken = True
                continue
            try:
                self._serve(conn)  # handles its own errors; this thread lives on
            except BaseException:
                with lock:
                    self.busy -= 1
                    if not self.busy:
                        self._idle.notify_all()
                raise
            served = True
            del conn  # a sleeping thread must not keep its last connection alive


def make_slots(size: int) -> ThreadPool:
    return ThreadPool(size)


_ARM = select.EPOLLIN | select.EPOLLONESHOT  # one event, then disarmed
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _Transport:
    """A connection's non-blocking socket as the adapter's transport.

    The descriptor is never switched to blocking (each switch is a system
    call, and the epoll thread reads it without blocking). A call that would
    block waits in ``poll`` for what it needs, within its timeout (``recv``:
    per call; ``send``: for the whole data, as CPython's ``sendall``); past
    it, ``TimeoutError``.
    """

    __slots__ = ("sock", "tls", "more")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.tls = isinstance(sock, ssl.SSLSocket)
        # The last read filled its buffer (or TLS, whose records hide what is
        # left): more may have arrived already.
        self.more = False

    def recv(self, size: int, timeout: float | None) -> bytes:
        until = None
        while True:
            try:
                data = self.sock.recv(size)
            except ssl.SSLWantWriteError:
                until = self._wait(select.POLLOUT, until, timeout)
            except (BlockingIOError, ssl.SSLWantReadError):
                until = self._wait(select.POLLIN, until, timeout)
            else:
                self.more = self.tls or len(data) == size
                return data

    def send(self, data: bytes, timeout: float | None) -> None:
        try:
            sent = self.sock.send(data)  # the usual case: all of it at once
        except _WOULD_BLOCK:
            sent = 0
        if sent == (data.nbytes if isinstance(data, memoryview) else len(data)):
            return
        until = None
        with memoryview(data) as view, view.cast("B") as cast:
            left = cast[sent:]
            while left:
                try:
                    left = left[self.sock.send(left) :]
                except ssl.SSLWantReadError:
                    until = self._wait(select.POLLIN, until, timeout)
                except (BlockingIOError, ssl.SSLWantWriteError):
                    until = self._wait(select.POLLOUT, until, timeout)

    def _wait(self, events: int, until: float | None, timeout: float | None) -> float:
        """Wait for ``events`` until ``until`` (first call: None, from now on
        ``timeout``); the deadline to pass to the next wait."""
        if until is None:
            until = math.inf if timeout is None else time.monotonic() + timeout
        if until == math.inf:
            millis = None
        else:
            millis = math.ceil((until - time.monotonic()) * 1000)
            if millis <= 0:
                raise TimeoutError("timed out")
        poller = select.poll()
        poller.register(self.sock, events)
        if not poller.poll(millis):
            raise TimeoutError("timed out")
        return until


class _Waiting:
    """One connection, accept to close: its socket, TLS state and deadline.

    ``parked``: armed in the epoll set, or read by the epoll thread; not
    parked, a pool thread has it. ``deadline`` is when to close it parked;
    the heap holds one live entry per connection, at ``at`` (None: none; a
    later ``deadline`` is pushed again when that entry comes out). Once
    closed (``seq`` -1) it holds neither socket nor connection: an entry
    that outlives it keeps nothing alive. ``pipelining``: once its client
    sent a request before the answer to the one before, a pool thread reads
    what has arrived after each answer before it parks the connection.
    ``lingering``: shut for writing, what comes is dropped (``Protocol.drop``).
    """

    __slots__ = (
        "conn",
        "sock",
        "fd",
        "address",
        "handshaking",
        "deadline",
        "at",
        "seq",
        "parked",
        "pipelining",
        "lingering",
    )

    def __init__(self, sock, address, handshaking: bool) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.conn: Connection | None = None
        self.handshaking = handshaking
        self.deadline = 0.0
        self.at: float | None = None
        self.seq = 0
        self.parked = False
        self.pipelining = False  # its client sends a request before an answer
        self.lingering = False


class Scheduler:
    """Accepts on ``listener``; parks connections in epoll; serves on threads."""

    multithread = True

    def __init__(
        self, core: Core, name: str, pool: ThreadPool, max_connections: int, tls=None
    ) -> None:
        self.core = core
        self.name = name
        self.pool = pool
        self.max_connections = max_connections
        self._context: ssl.SSLContext | None = tls[1] if tls else None
        self._epoll = select.epoll()
        # By descriptor; a closed one's stays until its number is reused.
        self._clients: dict[int, _Waiting] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # a full buffer wakes it all the same
        self._returned: collections.deque = collections.deque()
        self._woken = False
        # The deadline heap is the epoll thread's alone: a pool thread that
        # parks a connection with an earlier deadline than its entry's queues
        # it here, and wakes the epoll thread only if that sleeps past it
        # (``_sleep_until``; -inf while it is awake: it drains the queue
        # before it sleeps again). No lock on the path of a request.
        self._deadlines: list = []
        self._rescheduled: collections.deque = collections.deque()
        self._seq = itertools.count(1)
        self._sleep_until = -math.inf
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
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._epoll.register(listener, select.EPOLLIN)
        self._accepting = True
        self.pool.start(self._serve)
        self._thread = threading.Thread(
            target=self._loop, name=f"{self.name}-selector", daemon=True
        )
        self._thread.start()

    def stop_accepting(self) -> None:
        """Stop accepting; returns once the epoll thread no longer watches the
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
        """Until every connection is done and the epoll thread ended."""
        if self._thread is not None:
            self._thread.join()
        self.pool.wait_idle()

    @property
    def connections(self) -> int:
        return self._live

    def connection_states(self) -> list[str]:
        """One line per parked connection, and the serving."""
        lines = [f"  {self.pool.busy} being served"]
        for waiting in self._parked():
            conn = waiting.conn
            if waiting.handshaking or conn is None:
                lines.append("  (TLS handshake)")
            elif waiting.lingering:
                lines.append(f"  {conn.client_ip or 'unix'}: lingering")
            else:
                state = "request" if conn.protocol.begun else "idle"
                lines.append(f"  {conn.client_ip or 'unix'}: {state}")
        return lines

    def _parked(self) -> list[_Waiting]:
        return [w for w in list(self._clients.values()) if w.parked]

    # --- pool threads ----------------------------------------------------------------

    def _serve(self, waiting: _Waiting) -> None:
        """Serve requests (a pool thread); then hand the connection on."""
        conn = waiting.conn
        protocol = conn.protocol
        while True:
            try:
                after = conn.serve()
            except BaseException:  # SystemExit too: a pool thread outlives any app
                LOG.exception("%s: error serving %s", self.name, conn.client_ip)
                after = After.CLOSE
            if after is After.LINGER and self._shut_for_writing(waiting):
                waiting.lingering = True
                self._park(waiting, protocol.deadline)
                return
            if after is After.KEEP:
                if protocol.begun:  # its next request came with this one
                    waiting.pipelining = True
                # A client that waits for each answer has sent nothing since
                # a read that did not fill its buffer: no read in vain for it.
                wanted = conn.transport.more or waiting.pipelining
                ready = self._read_head(conn, waiting.sock, wanted)
                if ready is False:
                    self._park(waiting, protocol.wait_deadline(time.monotonic()))
                    return
                if ready and self.pool.queued():
                    self.pool.submit(waiting)  # to the end of the line
                    return
                if ready:
                    continue  # nobody waits for a thread: serve it here
            self._close_waiting(waiting)
            return

    @staticmethod
    def _shut_for_writing(waiting: _Waiting) -> bool:
        try:
            waiting.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        return True

    def _read_head(self, conn: Connection, sock, wanted: bool = True) -> bool | None:
        """Read what has arrived (if ``wanted``), without blocking: True when
        the connection is ready to serve, False when it waits for more, None
        when it ended (closed by the client, or a read error)."""
        protocol = conn.protocol
        if protocol.ready:
            return True
        transport = conn.transport
        while wanted:
            try:
                data = sock.recv(RECV_SIZE)
            except _WOULD_BLOCK:
                break
            except OSError:
                return None
            wanted = transport.more = transport.tls or len(data) == RECV_SIZE
            protocol.receive(data, time.monotonic())
            if protocol.closed:
                return None
            if protocol.ready:
                return True
        transport.more = False
        return False

    def _park(self, waiting: _Waiting, deadline: float) -> None:
        """Arm ``waiting`` in the epoll set (any thread), to be closed at
        ``deadline``.

        In this order: the deadline, then ``parked``, then ``at`` is read.
        The epoll thread, popping the entry at ``at`` meanwhile, either sees
        it parked, with this deadline (and pushes it again), or sees it not
        parked and drops the entry, setting ``at`` to None before this thread
        reads it (and queues it). Either way one entry stays live.
        """
        waiting.deadline = deadline
        waiting.parked = True
        at = waiting.at
        if at is None or deadline < at:
            self._rescheduled.append(waiting)
            if deadline < self._sleep_until:
                self._wake()
        try:
            self._epoll.modify(waiting.fd, _ARM)
        except (OSError, ValueError):  # the epoll thread ended
            self._close_waiting(waiting)

    def _push(self, waiting: _Waiting) -> None:
        """A new heap entry at ``waiting.deadline`` (the epoll thread): the
        one before goes stale."""
        waiting.at = waiting.deadline
        waiting.seq = next(self._seq)
        heapq.heappush(self._deadlines, (waiting.at, waiting.seq, waiting))

    def _forget(self, waiting: _Waiting) -> None:
        """Closed: its heap entry, stale now, keeps nothing alive."""
        waiting.seq = -1
        waiting.parked = False
        waiting.conn = waiting.sock = None

    def _closed(self) -> None:
        """A connection is gone: the epoll thread may wait for that (the
        last one, when stopping; room under ``max_connections``).

        Called on pool threads too. No close is missed: the epoll thread
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
        """Wake the epoll thread, once until it has drained the wake-ups."""
        if self._woken:
            return
        self._woken = True
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # already woken (buffer full), or shutting down

    # --- the epoll thread ------------------------------------------------------

    def _loop(self) -> None:
        epoll, clients = self._epoll, self._clients
        wake_fd, listener_fd = self._wake_r.fileno(), self._listener.fileno()
        heartbeat = self.core.heartbeat
        try:
            while not (self._stopping and self._live == 0):
                if heartbeat is not None:
                    heartbeat.beat()
                events = epoll.poll(self._timeout())
                self._sleep_until = -math.inf  # awake: nobody need wake it
                for fd, _ in events:
                    if fd == wake_fd:
                        self._drain_wakeups()
                    elif fd == listener_fd:
                        self._accept()
                    else:
                        self._readable(clients[fd])
                self._handle_returned()
                self._expire()
                self._accept_again()
        except Exception as exc:  # nothing accepts any more: let the process go
            LOG.exception("%s: the selector thread failed", self.name)
            self.core.server.accept_failed(exc)
        finally:
            if heartbeat is not None:
                heartbeat.release()
            epoll.close()  # a pool thread parking from now on closes
            for waiting in self._parked():
                self._close_waiting(waiting)
            self._wake_r.close()
            self._wake_w.close()

    def _timeout(self) -> float | None:
        """How long to sleep; from now on a pool thread parking a connection
        with an earlier deadline wakes this thread."""
        heartbeat = self.core.heartbeat
        while True:
            self._take_rescheduled()
            next_at = self._deadlines[0][0] if self._deadlines else math.inf
            beat_at = None
            if (
                heartbeat is not None
            ):  # the watchdog's stamp: a turn at least this often
                beat_at = time.monotonic() + heartbeat.interval
            for at in (self._close_idle_at, self._retry_accept_at or None, beat_at):
                if at is not None and at < next_at:
                    next_at = at
            self._sleep_until = next_at
            # Queued before that line: taken here. After it: the pool thread
            # saw the new _sleep_until, and woke this thread if it must.
            if not self._rescheduled:
                break
        if next_at == math.inf:
            return None
        return max(0.0, next_at - time.monotonic())

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
            if what == "stop":
                self._stopping = True
                self._end_accepting()
                arg.set()
            elif what == "close_idle":
                self._close_idle_at = arg
        if self._close_idle_at is not None and time.monotonic() >= self._close_idle_at:
            self._close_idle_at = None
            for waiting in self._parked():
                if waiting.conn is not None and not waiting.handshaking:
                    # A request may be in the socket, its readiness not yet
                    # seen: read it first, or closing would reset it.
                    self._readable(waiting)
                if waiting.parked and not (
                    waiting.conn is not None and waiting.conn.protocol.begun
                ):
                    self._close_waiting(waiting)

    def _take_rescheduled(self) -> None:
        """Push the entries pool threads queued (earlier deadlines). One a
        pool thread took back meanwhile (its next request came) is pushed
        too: when it parks again, later, the entry is there and nothing need
        wake this thread; at the entry's time it is pushed anew, or dropped if
        a pool thread still has it (see _park and _expire)."""
        rescheduled = self._rescheduled
        while rescheduled:
            waiting = rescheduled.popleft()
            if waiting.seq != -1:  # not closed
                self._push(waiting)

    def _expire(self) -> None:
        """Close the parked connections whose deadline passed."""
        self._take_rescheduled()
        deadlines, now = self._deadlines, time.monotonic()
        while deadlines and deadlines[0][0] <= now:
            _, seq, waiting = heapq.heappop(deadlines)
            if waiting.seq != seq:
                continue  # stale: rescheduled, or closed
            waiting.at = None
            if not waiting.parked:
                continue  # a pool thread has it: it parks it anew
            if waiting.deadline > now:
                self._push(waiting)  # its deadline moved on since
            else:
                self._close_waiting(waiting)
        # A stale entry would wait for its deadline to leave: once they
        # outnumber the connections, sweep them out.
        if len(deadlines) > 2 * self._live + 64:
            self._deadlines = [e for e in deadlines if e[2].seq == e[1]]
            heapq.heapify(self._deadlines)

    def _close_waiting(self, waiting: _Waiting) -> None:
        """Close a connection, once: parked (the epoll thread), served (its
        pool thread), or one that could not be parked."""
        if waiting.seq == -1:
            return
        sock = waiting.sock
        self._forget(waiting)
        try:
            sock.close()
        except OSError:
            pass
        self._closed()

    # --- accepting --------------------------------------------------------------------

    def _pause_accepting(self) -> None:
        if self._listener is not None:
            try:
                self._epoll.unregister(self._listener)
            except (OSError, ValueError):
                pass

    def _resume_accepting(self) -> None:
        try:
            self._epoll.register(self._listener, select.EPOLLIN)
        except (OSError, ValueError):
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
            backoff = self._errors.failed(exc)
            if backoff is None:
                self._accept_failed(exc)
            elif backoff:
                self._defer_accepting(time.monotonic() + backoff)
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

    def _end_accepting(self) -> None:
        """Never watch the listener again; a deferral pending ends too (its
        time, past, would make every turn's timeout zero)."""
        self._pause_accepting()
        self._accepting = False
        self._retry_accept_at = 0.0

    def _defer_accepting(self, at: float) -> None:
        """Stop watching the listener until ``at``, or it stays ready."""
        self._pause_accepting()
        self._retry_accept_at = at

    def _accept_failed(self, exc: Exception) -> None:
        """The listener broke: stop watching it, serve what is open, and let
        the process go (``Server.accept_failed``)."""
        LOG.error("%s: accept() failed: %r", self.name, exc)
        self._end_accepting()
        self.core.server.accept_failed(exc)

    def _admit(self, client: socket.socket, address) -> None:
        client.setblocking(False)
        now = time.monotonic()
        deadline = now + self.core.limits.header_timeout
        if self._context is not None:
            try:
                client = sslutils.wrap(client, self._context)
            except (OSError, ValueError):
                client.close()
                self._closed()
                return
            waiting = _Waiting(client, address, True)
        else:
            waiting = _Waiting(client, address, False)
            waiting.conn = self._connection(client, address, now)
        self._clients[waiting.fd] = waiting
        waiting.deadline = deadline
        waiting.parked = True
        self._push(waiting)
        try:
            self._epoll.register(waiting.fd, _ARM)
        except (OSError, ValueError):  # closed meanwhile
            self._close_waiting(waiting)

    # --- reading heads ---------------------------------------------------------------

    def _readable(self, waiting: _Waiting) -> None:
        """An event for a parked connection (disarmed now): read, then serve
        it, close it, or arm it again."""
        if waiting.seq == -1 or not waiting.parked:
            return
        sock = waiting.sock
        if waiting.lingering:
            self._drop(waiting)
            return
        if waiting.handshaking:
            try:
                sock.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                self._park(waiting, waiting.deadline)
                return
            except (OSError, ValueError) as exc:
                sslutils.handshake_failed(LOG, self.name, waiting.address, exc)
                self._close_waiting(waiting)
                return
            waiting.handshaking = False
            waiting.conn = self._connection(sock, waiting.address, time.monotonic())
            waiting.deadline = waiting.conn.protocol.deadline
        conn = waiting.conn
        ready = self._read_head(conn, sock)
        if ready is None:
            self._close_waiting(waiting)
        elif ready:
            waiting.parked = False
            self.pool.submit(waiting)
        else:  # the first byte of a keep-alive request started the head's clock
            self._park(waiting, conn.protocol.deadline or waiting.deadline)

    def _drop(self, waiting: _Waiting) -> None:
        """A lingering connection: drop what arrives; close when the protocol
        says (the client's close, the drop limit, the deadline)."""
        protocol = waiting.conn.protocol
        while True:
            try:
                data = waiting.sock.recv(RECV_SIZE)
            except _WOULD_BLOCK:
                self._park(waiting, waiting.deadline)
                return
            except OSError:
                data = b""
            if not protocol.drop(data, time.monotonic()):
                self._close_waiting(waiting)
                return

    def _connection(self, sock, address, now: float) -> Connection:
        try:
            sockname = sock.getsockname()
        except OSError:
            sockname = None
        return Connection(self.core, _Transport(sock), address, sockname, now)
