"""The access log: one line per request, through the logging operators configure.

The line is ``wsgi_log_format`` (eventlet's keys: ``client_ip``,
``request_line``, ``status_code``, ``body_length``, ``wall_seconds``,
``date_time``, plus ``request_id``). It goes to the ``eventlet.wsgi.server``
logger, the name operators' logging configurations already know. The record is
built directly (no caller lookup, no formatting when the logger is off); its
``request_id`` attribute is the response's ``x-openstack-request-id``, which
oslo.log shows where its context format string puts request ids.

On the threads scheduler the records go to the handlers from one writer
thread (:class:`Writer`), in the order the requests ended (unless the
handlers fall :data:`WRITER_BACKLOG` records behind).
"""

import logging
import os
import queue
import threading
import time
from email.utils import formatdate

LOGGER = logging.getLogger("eventlet.wsgi.server")
LOG = logging.getLogger(__name__)
# Records the writer thread may owe before requests write their own lines
# again: a log sink that blocks (a full pipe) holds requests back, as it does
# without the writer, instead of growing the queue without bound.
WRITER_BACKLOG = 10000


class Writer:
    """One thread that hands the access records to the logging handlers.

    Why: pool threads that write their own lines queue on each handler's lock,
    and the holder gives the GIL away at every write syscall under it, so
    under load every request pays for a convoy of handoffs. Here a request
    pays one queue put; the formatting and writing (the operators' handlers
    and format strings, unchanged) happen in one thread. The thread starts
    with the first line, in the process that serves (never before a fork).
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def put(self, record: logging.LogRecord) -> None:
        if self._queue.qsize() >= WRITER_BACKLOG:
            LOGGER.handle(record)  # the handlers are stuck or slow: wait on them
            return
        if self._thread is None:
            self._start()
        self._queue.put(record)

    def flush(self) -> None:
        """Return once every line put so far is written (a server's stop)."""
        if self._thread is None:
            return
        written = threading.Event()
        self._queue.put(written)
        written.wait()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="access-log", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        get, handle = self._queue.get, LOGGER.handle
        while True:
            record = get()
            if isinstance(record, threading.Event):
                record.set()  # flush(): everything before it is written
                continue
            try:
                handle(record)
            except Exception:  # a filter or handler that raises: not our end
                LOG.exception("the access log writer could not write a line")

    def _forget(self) -> None:
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._lock = threading.Lock()


WRITER = Writer()


class AccessLog:
    """Writes the access line of each request; cheap when logging is off.

    ``off_thread``: hand the records to :data:`WRITER` (the threads
    scheduler) instead of handling them in the request's thread.
    """

    def __init__(self, log_format: str, off_thread: bool = False) -> None:
        self.log_format = log_format
        self._handle = WRITER.put if off_thread else LOGGER.handle
        self._wants_date = "date_time" in log_format
        template = logging.LogRecord(
            LOGGER.name, logging.INFO, __file__, 0, log_format, None, None
        )
        template.request_id = ""
        self._template = template.__dict__

    def write(
        self,
        client_ip: str,
        request_line: str,
        status: str,
        body_length: int,
        started: float,
        request_id: str,
    ) -> None:
        logger = LOGGER
        if not logger.isEnabledFor(logging.INFO):
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
        record = _Record.__new__(_Record)
        fields = record.__dict__
        fields.update(self._template)
        now = time.time()
        template_created = fields["created"]
        fields["created"] = now
        fields["msecs"] = (now - int(now)) * 1000
        fields["relativeCreated"] += (now - template_created) * 1000
        fields["thread"] = threading.get_ident()
        fields["threadName"] = threading.current_thread().name
        fields["args"] = values  # a mapping: formatted by a handler that emits
        if request_id:
            fields["request_id"] = request_id
        self._handle(record)


class _Record(logging.LogRecord):
    """A LogRecord filled from the template instead of by ``__init__``."""


_date = [0, ""]


def date_header() -> str:
    """``Date: ...\\r\\n`` for a response, formatted once per second."""
    now = int(time.time())
    if _date[0] != now:
        _date[0], _date[1] = now, f"Date: {formatdate(now, usegmt=True)}\r\n"
    return _date[1]
