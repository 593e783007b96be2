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

import eventlet
import greenlet
from eventlet import event as green_event
from eventlet import hubs
from eventlet.green import socket as green_socket

from wsgisvc import sslutils
from wsgisvc.http import listeners
from wsgisvc.http.core import After, Connection, Core
from wsgisvc.http.slots import Slots

LOG = logging.getLogger(__name__)


def make_slots(size: int) -> Slots:
    return Slots(size)


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
        self._connections: dict[int, Connection | None] = {}
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
        for conn in list(self._connections.values()):
            if conn is not None and not conn.parser.begun:
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
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
            + ("request" if conn.parser.begun else "idle")
            for conn in list(self._connections.values())
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
        self._connections[key] = None
        conn = None
        try:
            if self._tls is not None:
                client = sslutils.wrap(client, self._tls[1])
                if not self._handshake(client, address):
                    return  # logged; closed below
            conn = self._connections[key] = Connection(self.core, client, address)
            self._serve(conn)
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
            if conn is not None:
                conn.close()
            else:
                client.close()
            room, self._room = self._room, None
            if room is not None:
                room.send()

    def _handshake(self, client, address) -> bool:
        """The TLS handshake, blocking this greenthread within the head's
        timeout; False when it failed (logged)."""
        client.settimeout(self.core.header_timeout)
        try:
            client.do_handshake()
        except OSError as exc:  # ssl.SSLError, a reset, the timeout
            sslutils.handshake_failed(LOG, self.name, address, exc)
            return False
        return True

    def _serve(self, conn: Connection) -> None:
        slots = self.slots
        while conn.read_head():  # no slot held while the head arrives
            slots.acquire()
            try:
                after = conn.serve()
            finally:
                slots.release()
            if after is not After.KEEP:
                if after is After.LINGER:
                    conn.linger()  # without the slot
                return
            # Fairness: let every other ready connection run before this one
            # serves its next (possibly already buffered) request.
            eventlet.sleep(0)
