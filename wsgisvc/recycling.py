"""Worker recycling: a worker past its request count or its memory is replaced.

A worker that leaks is replaced before it hurts (gunicorn's ``max_requests``
with jitter, uWSGI's ``reload-on-rss``), and never by leaving a gap: the
ProcessLauncher forks the replacement into the worker's slot first, and only
once the replacement says it serves is the old worker retired (SIGTTOU), to
finish its in-flight work and exit with the reason ``recycled``.

What crosses processes here is one pipe (:class:`ParentChannel`), written by
the workers and read by the parent's loop, which sleeps on it with the
signals: a worker says ``serving`` once its services started, and
``recycle`` once it reached its request count. Memory is the parent's to
watch: it reads each worker's ``/proc/<pid>/statm`` about once a second, so
nothing in the request path measures anything. The counting itself is one
``next()`` on an ``itertools.count`` per request, and only in a worker whose
``<name>_max_requests`` is set.

A single process (ServiceLauncher) has no parent to replace it: there the
options do nothing, and its launcher says so once.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random

from oslo_config import cfg

from wsgisvc import backend

# Seconds between two looks at the workers' resident memory.
RSS_CHECK_INTERVAL = 1.0
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Limits:
    """When a service's workers are replaced; every 0 means never.

    ``name`` is the prefix of the options they come from, for log lines.
    """

    name: str = ""
    max_requests: int = 0
    max_requests_jitter: int = 0
    max_rss_mib: int = 0

    @property
    def active(self) -> bool:
        return bool(self.max_requests or self.max_rss_mib)

    @classmethod
    def for_api(cls, conf: cfg.ConfigOpts, name: str) -> Limits:
        """``<name>_max_requests``, its jitter and ``<name>_max_worker_rss_mib``."""
        return cls(
            name,
            conf[f"{name}_max_requests"],
            conf[f"{name}_max_requests_jitter"],
            conf[f"{name}_max_worker_rss_mib"],
        )

    @classmethod
    def for_rpc(cls, conf: cfg.ConfigOpts, topic: str) -> Limits:
        """``<topic>_max_worker_rss_mib``: an RPC worker is recycled by memory."""
        return cls(topic, max_rss_mib=conf[f"{topic}_max_worker_rss_mib"])


OFF = Limits()


class ParentChannel:
    """The pipe a ProcessLauncher's workers tell it things through.

    Each message is one line, ``<pid> <event> <detail>``, written at once: a
    pipe write of up to PIPE_BUF bytes is atomic, so the lines of workers
    writing together never mix.
    """

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        self._partial = b""

    def fileno(self) -> int:
        return self._read_fd

    def in_child(self) -> None:
        """In a new worker: keep only the write end, for :func:`tell_parent`."""
        global _to_parent
        os.close(self._read_fd)
        _to_parent = self._write_fd

    def read(self) -> list[tuple[int, str, str]]:
        """The messages waiting, as (pid, event, detail), oldest first."""
        data = self._partial
        while True:
            try:
                chunk = backend.os_read(self._read_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        *lines, self._partial = data.split(b"\n")
        messages = []
        for line in lines:
            pid, _, rest = line.decode().partition(" ")
            event, _, detail = rest.partition(" ")
            messages.append((int(pid), event, detail))
        return messages


# The write end of the parent's channel, in a forked worker; None elsewhere.
_to_parent: int | None = None


def in_worker() -> bool:
    """True in a worker a ProcessLauncher forked (there is a parent to tell)."""
    return _to_parent is not None


def tell_parent(event: str, detail: str = "") -> None:
    """Send ``event`` to the parent's loop; nothing outside a forked worker."""
    if _to_parent is not None:
        backend.os_write(_to_parent, f"{os.getpid()} {event} {detail}\n".encode())


def serving() -> None:
    """This worker's services have started: a worker it replaces may go."""
    tell_parent("serving")


class _RequestCount:
    """A WSGI application that counts the requests it is called for and,
    at the worker's own limit (``max_requests`` plus its jitter, drawn once
    per worker), asks the parent once to replace this worker."""

    def __init__(self, app, limits: Limits) -> None:
        self.app = app
        jitter = random.randint(0, limits.max_requests_jitter)
        self.limit = limits.max_requests + jitter
        self.why = (
            f"reached {self.limit} requests ({limits.name}_max_requests = "
            f"{limits.max_requests}, + {jitter} of jitter)"
        )
        self._count = itertools.count(1)

    def __call__(self, environ, start_response):
        if next(self._count) == self.limit:  # once: each value comes once
            tell_parent("recycle", self.why)
        return self.app(environ, start_response)


def count_requests(app, limits: Limits):
    """``app``, counted, in a forked worker whose ``max_requests`` is set;
    otherwise ``app`` itself. Call it in the worker (in ``start()``), where
    the jitter is drawn."""
    if limits.max_requests and in_worker():
        return _RequestCount(app, limits)
    return app


def rss_mib(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB, from /proc; None once it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None
    return resident_pages * _PAGE_SIZE / MIB


def over_memory(pid: int, limits: Limits) -> str | None:
    """Why worker ``pid`` must be recycled for its memory, or None."""
    if not limits.max_rss_mib:
        return None
    rss = rss_mib(pid)
    if rss is None or rss <= limits.max_rss_mib:
        return None
    return (
        f"resident memory {rss:.0f} MiB is over "
        f"{limits.name}_max_worker_rss_mib = {limits.max_rss_mib}"
    )
