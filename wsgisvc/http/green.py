"""The eventlet connection scheduler: a greenthread per connection, slots per request.

Every accepted connection (up to ``max_connections``) gets a greenthread of
its own, cheap to park: it waits for its request head, and for the next one on
a keep-alive connection, in a green ``recv`` that holds no pool slot. Only a
whole head takes a slot from :class:`~wsgisvc.http.slots.Slots`, for as long
as the request is served. So slow or idle clients cost a parked greenthread
each, and cannot lock out the clients that are ready.
"""

from __future__ import annotations

import logging
import socket
import time

import eventlet
import greenlet
from eventlet import event as green_event
from eventlet import hubs
from eventlet.green import socket as green_socket

from wsgisvc import sslutils
from wsgisvc.http import listeners
from wsgisvc.http.core import Connection, Core
from wsgisvc.http.limits import RECV_SIZE
from wsgisvc.http.protocol import After, Protocol
from wsgisvc.http.slots import Slots

LOG = logging.getLogger(__name__)


def make_slots(size: int) -> Slots:
    return Slots(size)


class _Transport:
    """A green socket as the adapter's transport: its timeout set per call
    (an attribute of eventlet's socket, no system call)."""

    __slots__ = ("sock",)

    def __init__(self, sock) -> None:
        self.sock = sock

    def recv(self, size: int, timeout: float | None) -> bytes:
        self.sock.settimeout(timeout)
        return self.sock.recv(size)

    def send(self, data: bytes, timeout: float | None) -> None:
        self.sock.settimeout(timeout)
        self.sock.sendall(data)


class Scheduler:
    """Accepts on ``listener`` and runs each connection through ``core``."""

    multithread = False

    def __init__(
        self, core: Core, name: str, slots: Slots, max_connections: int, tls=None
    ) -> None:
        self.core = core
        self.name = name
        self.slots = slots
        self.max_connections = max_connections
        self._tls = tls  # (conf, SSLContext) or None
        # By id of the client socket: its Connection (None: a TLS handshake).
        self._connections: dict[int, tuple[Connection | None, socket.socket]] = {}
        self._room: green_event.Event | None = None  # set while the loop waits
        self._acceptor = None
        self._ticker = None  # stamps core.heartbeat while the hub turns
        self._threads: set = set()
        self._errors = listeners.AcceptErrors(LOG, name)

    def start(self, listener: socket.socket) -> None:
        # A copy the loop closes when it ends: a green wrapper closes the
        # socket it wraps once collected, and a SIGHUP reload in a single
        # process keeps serving ``listener`` across a stop and a start.
        self._acceptor = eventlet.spawn(
            self._accept_loop, green_socket.socket(listener.dup())
        )
        if self.core.heartbeat is not None:
            self._ticker = eventlet.spawn(self._tick, self.core.heartbeat)

    def stop_accepting(self) -> None:
        if self._acceptor is not None:
            self._acceptor.kill()

    def close_idle(self, grace: float) -> None:
        """Close, after ``grace`` seconds, connections not sending a request.

        Not at once: a client that connected just before the stop may not
        have sent its request yet; it gets served (``Connection: close``).
        """
        eventlet.spawn_after(grace, self._close_idle)

    def _close_idle(self) -> None:
        for conn, client in list(self._connections.values()):
            if conn is not None and not conn.protocol.begun:
                try:
                    client.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def wait(self) -> None:
        """Until the accept loop ended and every connection is done."""
        if self._acceptor is not None:
            try:
                self._acceptor.wait()
            except greenlet.GreenletExit:
                pass
        for thread in list(self._threads):
            thread.wait()
        if self._ticker is not None:
            self._ticker.kill()
            self.core.heartbeat.release()

    @staticmethod
    def _tick(heartbeat) -> None:
        """The hub's heartbeat: a greenthread runs only while the hub turns."""
        while True:
            heartbeat.beat()
            eventlet.sleep(heartbeat.interval)

    @property
    def connections(self) -> int:
        return len(self._connections)

    def connection_states(self) -> list[str]:
        """One line per open connection, for the report (SIGUSR2)."""
        return [
            "  (TLS handshake)"
            if conn is None
            else f"  {conn.client_ip or 'unix'}: "
            + ("request" if conn.protocol.begun else "idle")
            for conn, _ in list(self._connections.values())
        ]

    # --- accepting ---------------------------------------------------------------

    def _accept_loop(self, listener) -> None:
        try:
            while True:
                if len(self._connections) >= self.max_connections:
                    self._room = green_event.Event()
                    self._room.wait()  # meanwhile the kernel's backlog holds them
                    continue
                if not self.slots.wait_room(listeners.ACCEPT_DEFER):
                    if not self._take_waiting(listener):  # no sibling took them
                        # Still full and none waits: until one comes, not a poll.
                        hubs.trampoline(listener, read=True)
                    continue
                if self._accept(listener):
                    # Let the new connection run first: a busy worker comes back
                    # to accept() later than an idle sibling, which spreads them.
                    eventlet.sleep(0)
        except greenlet.GreenletExit:
            pass  # stop() killed the loop
        except Exception as exc:  # the listener broke: let the process go
            LOG.exception("%s: accept() failed", self.name)
            self.core.server.accept_failed(exc)
        finally:
            listener.close()

    def _take_waiting(self, listener) -> bool:
        """Accept every connection already waiting, without blocking; False
        when there was none."""
        taken = False
        listener.settimeout(0.0)
        try:
            while len(self._connections) < self.max_connections:
                if not self._accept(listener):
                    break
                taken = True
        finally:
            listener.settimeout(None)
        return taken

    def _accept(self, listener) -> bool:
        """Accept one connection and start serving it; False when none came
        (a client's error, a resource error, or none waiting)."""
        try:
            client, address = listener.accept()
        except BlockingIOError:
            return False
        except OSError as exc:
            backoff = self._errors.failed(exc)
            if backoff is None:
                raise  # the listener broke: _accept_loop reports it
            if backoff:
                eventlet.sleep(backoff)
            return False
        self._errors.accepted()
        if not isinstance(client, green_socket.socket):  # a non-blocking accept
            client = green_socket.socket(client)
        thread = eventlet.spawn(self._run, client, address)
        self._threads.add(thread)
        thread.link(self._threads.discard)
        return True

    def _run(self, client, address) -> None:
        key = id(client)
        self._connections[key] = (None, client)
        try:
            if self._tls is not None:
                client = sslutils.wrap(client, self._tls[1])
                self._connections[key] = (None, client)
                if not self._handshake(client, address):
                    return  # logged; closed below
            try:
                sockname = client.getsockname()
            except OSError:
                sockname = None
            conn = Connection(
                self.core, _Transport(client), address, sockname, time.monotonic()
            )
            self._connections[key] = (conn, client)
            self._serve(conn, client)
        except OSError as exc:  # includes ssl.SSLError and timeouts
            LOG.debug("%s: connection from %s ended: %s", self.name, address, exc)
        except (greenlet.GreenletExit, KeyboardInterrupt):
            # A kill of this greenthread; or, sharing the main thread with
            # Python's signal handlers, maybe the process's own SIGINT (when no
            # launcher handles it): the hub re-raises it in the main greenlet.
            raise
        except BaseException:  # SystemExit too: the hub would end the process
            LOG.exception("%s: error serving connection from %s", self.name, address)
        finally:
            del self._connections[key]
            try:
                client.close()
            except OSError:
                pass
            room, self._room = self._room, None
            if room is not None:
                room.send()

    def _handshake(self, client, address) -> bool:
        """The TLS handshake, blocking this greenthread within the head's
        timeout; False when it failed (logged)."""
        client.settimeout(self.core.limits.header_timeout)
        try:
            client.do_handshake()
        except OSError as exc:  # ssl.SSLError, a reset, the timeout
            sslutils.handshake_failed(LOG, self.name, address, exc)
            return False
        return True

    def _serve(self, conn: Connection, client) -> None:
        slots, protocol = self.slots, conn.protocol
        while _read_head(protocol, client):  # no slot held while it arrives
            slots.acquire()
            try:
                after = conn.serve()
            finally:
                slots.release()
            if after is not After.KEEP:
                if after is After.LINGER:
                    _linger(protocol, client)  # without the slot
                return
            # Fairness: let every other ready connection run before this one
            # serves its next (possibly already buffered) request.
            eventlet.sleep(0)


def _read_head(protocol: Protocol, sock) -> bool:
    """Receive until a request is ready (True), or the connection ended:
    the client's close, a read error, the deadline (False)."""
    if protocol.ready:
        return True
    until = protocol.wait_deadline(time.monotonic())
    while True:
        remaining = until - time.monotonic()
        if remaining <= 0:
            return False
        try:
            sock.settimeout(remaining)
            data = sock.recv(RECV_SIZE)
        except OSError:  # a timeout, a reset, a TLS error
            return False
        protocol.receive(data, time.monotonic())
        if protocol.ready:
            return True
        if protocol.closed:
            return False
        until = protocol.deadline


def _linger(protocol: Protocol, sock) -> None:
    """Shut for writing, then drop what the client still sends until the
    protocol says to close (the caller closes)."""
    try:
        sock.shutdown(socket.SHUT_WR)
        while True:
            remaining = protocol.deadline - time.monotonic()
            if remaining <= 0:
                return
            sock.settimeout(remaining)
            if not protocol.drop(sock.recv(RECV_SIZE), time.monotonic()):
                return
    except (OSError, ValueError):
        pass
