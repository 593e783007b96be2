"""The runtime contract: what ``wsgi.Server`` calls, and what a runtime does.

The HTTP decisions are the protocol's (:mod:`wsgisvc.http.protocol`), the
WSGI call the adapter's (:mod:`wsgisvc.http.core`); a runtime only moves
bytes, wakes at deadlines and gives a ready request a slot. ``green``
(eventlet: a greenthread per connection) and ``threaded`` (native threads:
an epoll thread and a pool) are the two; a third is written against this
page alone.

A runtime module defines ``make_slots(size) -> Pool`` and a ``Scheduler``
class. ``wsgi.Server`` builds the pool once (before the launcher forks: no
thread or greenthread may exist until ``Scheduler.start``), and a new
``Scheduler(core, name, pool, max_connections, tls)`` each time it starts.

What a runtime does with each connection it accepts (``tls``, when not None,
is ``(conf, ssl.SSLContext)``: wrap the socket with ``sslutils.wrap`` and
handshake first, within ``core.limits.header_timeout``, without blocking the
accept loop; a failure goes to ``sslutils.handshake_failed`` and ends that
connection only):

1. Build ``conn = Connection(core, transport, address, sockname, now)``:
   ``transport`` is the runtime's :class:`Transport` over the socket, ``now``
   ``time.monotonic()``. Its ``conn.protocol`` is the connection's
   :class:`~wsgisvc.http.protocol.Protocol`.
2. Wait for the next request without holding a slot: give every read to
   ``protocol.receive(data, time.monotonic())`` (``b""``, the client's
   close, sets ``protocol.closed``: close the socket) until
   ``protocol.ready``; close the socket at ``protocol.wait_deadline(now)``
   (``now`` taken when the wait began; once a byte came, it is
   ``protocol.deadline``, the head's).
3. Take a slot, call ``conn.serve()`` (it sends the response, and reads and
   drops a body the application left, through the transport), give the slot
   back. Never call ``serve()`` on two threads for one connection at once.
4. Act on the :class:`~wsgisvc.http.protocol.After` it returned: ``KEEP``,
   back to 2 (the next request may be ready already, pipelined:
   ``protocol.ready``; let other connections be served first); ``CLOSE``,
   close the socket; ``LINGER``, ``shutdown(SHUT_WR)`` (failing: close), then
   give what the client still sends to ``protocol.drop(data, now)`` until it
   returns False or ``protocol.deadline`` passes, *without* a slot, then
   close.
5. An exception out of ``serve()`` (anything, ``SystemExit`` included) is
   logged and closes that connection only: the slot, the connection count
   and the thread that served it survive. But a ``KeyboardInterrupt`` where
   Python's signal handlers run (the main thread: eventlet's greenthreads)
   may be the process's own SIGINT, when no launcher handles it: it ends the
   connection and goes on up (eventlet's hub raises it in the main greenlet),
   or Ctrl-C would end one connection instead of the process.
6. An ``accept()`` error goes to ``listeners.AcceptErrors.failed``, which
   logs what an operator must see: a number of seconds, go on after that
   many (0: a client's error; ``RESOURCE_BACKOFF``: out of a resource); None,
   the listener broke: stop accepting and call
   ``core.server.accept_failed(exc)``, which stops the process so that it is
   restarted. So does any exception that ends the accept loop (or the thread
   that accepts): a process that no longer accepts must not stay up. Call
   ``AcceptErrors.accepted()`` after each accept that succeeded.
7. Accept only while fewer than ``max_connections`` are open; at the cap,
   wait for a connection to close, not for a timer (the listener stays
   readable while new ones wait in the backlog). With no slot free, leave
   new connections to siblings sharing the listener for
   ``listeners.ACCEPT_DEFER``, then take every one still waiting: a sibling
   with room gets the burst, and none waits in the backlog behind busy
   workers for longer than that.
8. With ``core.heartbeat`` set (a watched worker: ``wsgisvc.watchdog``),
   call its ``beat()`` each time the loop that accepts and reads heads
   turns, at least every ``core.heartbeat.interval`` seconds while idle
   (eventlet: a greenthread that runs only while the hub turns; threads: the
   selector's turns, its timeout capped), and ``release()`` once that loop
   has ended. A loop that stops beating is taken for stuck, and its process
   killed, after the service's ``worker_timeout``.

The gunicorn worker (``wsgisvc.gunicorn``) is no runtime of this contract:
gunicorn's base class owns the connection and its parser (the operator's
``limit_request_*`` options keep their meaning), but it shares 6 (its broken
listener stops the worker, and the arbiter starts a new one) and the TLS
wrap. It differs in how it yields while accepting, because its unit of work
differs: a connection holds one of its ``worker_connections`` greenthreads
from accept to close, so there is no free slot to defer on (7): at the cap
it stops accepting (``GreenPool.spawn_n`` waits: an event) and siblings take
the backlog, and it yields after ``ACCEPT_BATCH`` accepts, so that a burst
neither lands on one worker whole nor is admitted one connection per hub
round. Here, a connection costs no slot until its head is whole, and with
none free the deferral of 7 hands a burst to siblings; so eventlet yields
after every accept (the new greenthread reads first; an idle sibling comes
back to ``accept()`` sooner) and threads accept one connection per turn of
the selector (it turns again at once while more wait; meanwhile a sibling
takes its share).
"""

from __future__ import annotations

import socket
from typing import Protocol


class Transport(Protocol):
    """A connection's socket as the adapter uses it while a request is
    served: two calls, each blocking the request's thread (or greenthread)
    within ``timeout`` seconds (None: no bound)."""

    def recv(self, size: int, timeout: float | None) -> bytes:
        """Up to ``size`` bytes; ``b""`` once the client closed.
        ``TimeoutError`` when none came in time; ``OSError`` when the
        connection failed."""

    def send(self, data: bytes, timeout: float | None) -> None:
        """All of ``data``, or ``TimeoutError``/``OSError``."""


class Pool(Protocol):
    """How many requests are served at once; resizable while serving."""

    size: int  # the configured size
    busy: int  # requests being served now

    def free(self) -> int:
        """Slots neither serving nor promised to a request waiting for one."""

    def resize(self, size: int) -> None:
        """Grow at once (waiters run) or shrink as slots come back; 0 at the
        end of ``wsgi.Server.wait``."""


class Scheduler(Protocol):
    """Accepts on one listener and runs each connection through the adapter."""

    multithread: bool  # environ's wsgi.multithread

    def start(self, listener: socket.socket) -> None:
        """Begin accepting on ``listener`` (a plain listening socket) and return."""

    def stop_accepting(self) -> None:
        """Accept no more; return once ``listener`` may be closed by the caller."""

    def close_idle(self, grace: float) -> None:
        """After ``grace`` seconds, close connections not sending a request
        (``not conn.protocol.begun``); the rest finish their current request,
        whose response says ``Connection: close`` (``core.stop``). One whose
        response had begun kept alive waits for its next request as long as
        ``protocol.wait_deadline`` says: the same grace."""

    def wait(self) -> None:
        """Block until accepting ended and every connection is closed."""

    @property
    def connections(self) -> int:
        """Connections accepted and not yet closed."""

    def connection_states(self) -> list[str]:
        """One indented line per open connection, for the SIGUSR2 report."""
