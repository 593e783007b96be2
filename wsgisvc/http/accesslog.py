"""The access log: one line per request, through the logging operators configure.

The line is ``wsgi_log_format`` (eventlet's keys: ``client_ip``,
``request_line``, ``status_code``, ``body_length``, ``wall_seconds``,
``date_time``, plus ``request_id``). It goes to the ``eventlet.wsgi.server``
logger, the name operators' logging configurations already know. The record is
built directly (no caller lookup, no formatting when the logger is off); its
``request_id`` attribute is the response's ``x-openstack-request-id``, which
oslo.log shows where its context format string puts request ids.
"""

import logging
import threading
import time
from email.utils import formatdate

LOGGER = logging.getLogger("eventlet.wsgi.server")


class AccessLog:
    """Writes the access line of each request; cheap when logging is off."""

    def __init__(self, log_format: str) -> None:
        self.log_format = log_format
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
        logger.handle(record)


class _Record(logging.LogRecord):
    """A LogRecord filled from the template instead of by ``__init__``."""


_date = [0, ""]


def date_header() -> str:
    """``Date: ...\\r\\n`` for a response, formatted once per second."""
    now = int(time.time())
    if _date[0] != now:
        _date[0], _date[1] = now, f"Date: {formatdate(now, usegmt=True)}\r\n"
    return _date[1]
