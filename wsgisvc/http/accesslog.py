"""The access log: one line per request, through the logging operators configure.

The line is ``wsgi_log_format`` (eventlet's keys: ``client_ip``,
``request_line``, ``status_code``, ``body_length``, ``wall_seconds``,
``date_time``, plus ``request_id``) at INFO on the ``wsgisvc.access`` logger
(:data:`LOGGER`). Its records are made by that logger (``makeRecord``, so a
factory set with ``logging.setLogRecordFactory`` makes them) and pass its
filters in the request's thread. Each carries what oslo.log's formatter shows
as the application's own lines show it, from whichever thread formats it:
``request_id``, the response's ``x-openstack-request-id`` (oslo.middleware's
request_id sets it), and ``context``, the oslo.context RequestContext the
application made current while serving the request (None when it made none:
one left over from an earlier request of the thread is not this request's).

The logger was ``eventlet.wsgi.server``, and operators turn the line off by
setting that name to WARN (``default_log_levels``): a level set on it still
applies. Handlers and filters are configured on ``wsgisvc.access``: handing
records on to the old name as well would either deliver them twice or make
``wsgisvc.access`` a logger that does not propagate yet reaches the root.

On the threads scheduler the records are queued (``logging.handlers``'
QueueHandler) and handed to the handlers by one thread (QueueListener; see
:class:`Writer` for why), in the order the requests ended, in batches (a
line is up to :data:`WRITER_LINGER` late). What is queued is written before
the process exits (:func:`flush_at_exit`).
"""

from __future__ import annotations

import atexit
import collections
import logging
import logging.handlers
import os
import queue
import threading
import time
from email.utils import formatdate

from oslo_context import context as oslo_context

LOGGER = logging.getLogger("wsgisvc.access")
OLD_NAME = "eventlet.wsgi.server"
_OLD_LOGGER = logging.getLogger(OLD_NAME)
LOG = logging.getLogger(__name__)
# Records the writer thread may owe before requests wait for room: a log sink
# that blocks (a full pipe) holds requests back, as it does without the
# writer, instead of growing the queue without bound.
WRITER_BACKLOG = 10000
# The writer, woken by a record after it had written all, waits this long
# (or for this many records, or a flush) before it writes them: one wake-up
# for many lines. A line is that much later in the log at most.
WRITER_LINGER = 0.01
WRITER_BATCH = 64
# How long an exit waits for the queued lines: a working sink writes a whole
# backlog in well under that; a stuck one must not keep the process alive.
EXIT_FLUSH_TIMEOUT = 5.0


def _old_name_allows_info() -> bool:
    """False when a level above INFO is set on ``eventlet.wsgi.server`` (or
    ``eventlet.wsgi``, ``eventlet``): how operators turned the line off. The
    root's level is not asked: ``wsgisvc.access``'s own stood in for it."""
    logger = _OLD_LOGGER
    while logger.parent is not None:
        if logger.level:
            return logger.level <= logging.INFO
        logger = logger.parent
    return True


class _Batches:
    """The writer's queue: bounded, and it wakes the writer once per batch.

    Woken for each record, the writer thread would sleep and wake once per
    request and take the GIL from the pool threads for each line. Here the
    first record after the queue ran empty wakes it, and it lingers for more
    (:data:`WRITER_LINGER`, :data:`WRITER_BATCH`; a flush or a full queue
    ends that at once) before it takes them one after the other.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: collections.deque = collections.deque()
        lock = threading.Lock()
        self._readable = threading.Condition(lock)
        self._room = threading.Condition(lock)
        self._reader_waits = False
        self._urgent = False  # a flush or a full queue: no lingering

    def qsize(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    def put(self, item, timeout: float | None = None) -> None:
        """Queue ``item``, waiting up to ``timeout`` for room (then
        ``queue.Full``)."""
        with self._room:
            if self.full():
                self._urgent = True
                self._readable.notify()
                if not self._room.wait_for(lambda: not self.full(), timeout):
                    raise queue.Full
            self._items.append(item)
            if not self._reader_waits:
                return
            if not isinstance(item, logging.LogRecord):
                self._urgent = True
            if len(self._items) in (1, WRITER_BATCH) or self._urgent:
                self._readable.notify()

    def get(self, block: bool = True):
        """The next item: at once while some are queued; else the first to
        come, once the batch behind it is in (QueueListener passes ``block``,
        always true)."""
        with self._readable:
            if not self._items:
                self._reader_waits = True
                self._urgent = False
                self._readable.wait_for(lambda: self._items)
                self._readable.wait_for(
                    lambda: self._urgent or len(self._items) >= WRITER_BATCH,
                    WRITER_LINGER,
                )
                self._reader_waits = False
            item = self._items.popleft()
            self._room.notify()
            return item


class _Enqueue(logging.handlers.QueueHandler):
    """Waits for room in the bounded queue instead of dropping the record,
    and queues the record as it is: QueueHandler's own ``prepare`` formats the
    message here and drops ``args``, which the handlers would then miss (a
    JSON formatter writes the access fields from them); the record is nobody
    else's and never leaves the process, so there is nothing to copy."""

    def enqueue(self, record: logging.LogRecord) -> None:
        self.queue.put(record)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class _Deliver(logging.Handler):
    """The writer thread's handler: each record to the access logger's
    handlers (its filters ran in the request's thread). A filter or handler
    that raises is logged, and the thread goes on: it would otherwise end,
    every later line lost and the next flush waiting for good."""

    def handle(self, record) -> bool:
        if isinstance(record, threading.Event):
            record.set()  # a flush: everything queued before it is written
            return True
        try:
            LOGGER.callHandlers(record)
        except Exception:
            LOG.exception("the access log writer could not write a line")
        return True


class Writer:
    """One thread that hands the access records to the logging handlers.

    Why: pool threads that write their own lines queue on each handler's lock,
    and the holder gives the GIL away at every write syscall under it, so
    under load every request pays for a convoy of handoffs. Here a request
    pays one queue put; the formatting and writing (the operators' handlers
    and format strings, unchanged) happen in one thread. The thread starts
    with the first line, in the process that serves (never before a fork).
    """

    def __init__(self, backlog: int = WRITER_BACKLOG) -> None:
        self.backlog = backlog
        self._forget()
        os.register_at_fork(after_in_child=self._forget)

    def handle(self, record: logging.LogRecord) -> None:
        """Queue ``record``; wait for room while the backlog is full."""
        handler = self._handler or self._start()
        handler.handle(record)

    def flush(self, timeout: float | None = None) -> bool:
        """Return once every line queued so far is written (a server's stop,
        an exit), or after ``timeout``; True if they were."""
        if self._handler is None:
            return True
        written = threading.Event()
        try:
            self._handler.queue.put(written, timeout=timeout)
        except queue.Full:
            return False
        return written.wait(timeout)

    def _start(self) -> logging.handlers.QueueHandler:
        with self._lock:
            if self._handler is None:
                records = _Batches(self.backlog)
                listener = logging.handlers.QueueListener(records, _Deliver())
                listener.start()
                self._handler = _Enqueue(records)
            return self._handler

    def _forget(self) -> None:
        """A new process has no writer thread yet (the parent's is not here)."""
        self._handler: logging.handlers.QueueHandler | None = None
        self._lock = threading.Lock()


WRITER = Writer()


def flush_at_exit() -> None:
    """Write what is queued before the process exits, up to
    :data:`EXIT_FLUSH_TIMEOUT`; called before ``os._exit`` and at the
    interpreter's exit."""
    WRITER.flush(EXIT_FLUSH_TIMEOUT)


atexit.register(flush_at_exit)


def current_context() -> oslo_context.RequestContext | None:
    """The oslo.context RequestContext current in this thread, or None."""
    return oslo_context.get_current()


def context_made_since(
    before: oslo_context.RequestContext | None,
) -> oslo_context.RequestContext | None:
    """The context current now if it is not ``before`` (:func:`current_context`
    when the request began), else None: oslo.context never clears it, so one
    an earlier request of the thread made is still current in a request that
    made none."""
    context = oslo_context.get_current()
    return None if context is before else context


class AccessLog:
    """Writes the access line of each request; cheap when logging is off.

    ``writer``: queue the records to it (the threads scheduler) instead of
    handling them in the request's thread.
    """

    def __init__(self, log_format: str, writer: Writer | None = None) -> None:
        self.log_format = log_format
        self._writer = writer
        self._wants_date = "date_time" in log_format

    def write(
        self,
        client_ip: str,
        request_line: str,
        status: str,
        body_length: int,
        started: float,
        request_id: str,
        context: oslo_context.RequestContext | None = None,
    ) -> None:
        """``context``: the request's oslo.context RequestContext
        (:func:`context_made_since`), or None."""
        logger = LOGGER
        if not (logger.isEnabledFor(logging.INFO) and _old_name_allows_info()):
            return
        values = {
            "client_ip": client_ip,
            "request_line": request_line,
            "status_code": status[:3],
            "body_length": body_length,
            "wall_seconds": time.monotonic() - started,
            "request_id": request_id,
        }
        if self._wants_date:
            values["date_time"] = time.strftime("%d/%b/%Y %H:%M:%S")
        record = logger.makeRecord(
            logger.name,
            logging.INFO,
            __file__,
            0,
            self.log_format,
            (values,),  # a mapping: formatted by a handler that emits
            None,
            extra={"request_id": request_id, "context": context},
        )
        if self._writer is None:
            logger.handle(record)
        elif logger.filter(record):
            self._writer.handle(record)


_date = [0, ""]


def date_header() -> str:
    """``Date: ...\\r\\n`` for a response, formatted once per second."""
    now = int(time.time())
    if _date[0] != now:
        _date[0], _date[1] = now, f"Date: {formatdate(now, usegmt=True)}\r\n"
    return _date[1]
