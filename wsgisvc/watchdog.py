"""The watchdog: a stuck worker is found, its stacks logged, and it is replaced;
a request that runs long logs its stack once.

A stuck worker (``<name>_worker_timeout``) is one whose loop stopped turning:
an eventlet hub blocked by a call that never yields, a selector thread that
cannot run. Its requests, and every request it would take, wait forever while
its parent sees a live process. gunicorn and uWSGI kill such a worker
silently; here the operator is told why first.

What a ProcessLauncher's parent and one watched worker share, made before the
fork (:class:`Watch`): a page of shared memory where each loop of the worker
writes the monotonic time every turn (a store, no system call: the clock is
the kernel's vDSO), two memory files (memfd) for the stacks, and a pipe from the
parent. The parent reads the page only when a deadline of its loop says the
oldest stamp may be ``timeout`` old, so a healthy service costs it one look per
timeout. Once the worker is stuck, the stacks come one of two ways, because
the stuck code may hold the GIL:

- from Python: the worker's native watchdog thread, woken by the parent on the
  pipe, writes every thread's stack and every parked greenthread's (found by
  the collector) in one write, and says ``stacks-written``; the parent then
  kills it (SIGKILL). It needs the GIL: a hub blocked in a C call that
  released it (an unpatched sleep, a driver's blocking read) lets it run.
- from C, when no answer came within ``DUMP_GRACE`` (a regular expression
  backtracking for ever holds the GIL; no Python runs): the parent sends
  ``DUMP_SIGNAL``, on which ``faulthandler`` writes every thread's stack from
  its signal handler, then the signal's default action ends the worker, so its
  end tells the parent the dump is whole. SIGKILL ``DUMP_GRACE`` later if not.
  faulthandler writes 100 threads at most.

Once it is reaped, the parent logs the stacks in one record, and the slot is
refilled as after any death; the worker-exit metric counts ``timeout``.

A worker arms its watch with its first stamp (a worker still loading its app
is not timed) and disarms it when its launcher's loop ends, before the exit
handlers run: a worker that drains or exits is not stuck, and a loop that
ends (its server stopped) gives its place up. A single process has no parent
to replace it: there ``<name>_worker_timeout`` does nothing (its launcher says
so once), as do the recycling options.

A slow request (``<name>_slow_request_seconds``, any launcher): each server
keeps its requests in flight in a set, and a native thread that wakes when the
oldest one not yet logged is due logs that request's own stack (its
greenthread's or thread's frames), with its method and target, once. Nothing
is killed. The cost is a set insertion and removal per request, only when on.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import mmap
import os
import signal
import sys
import time
from collections.abc import Iterable
from types import FrameType

from oslo_config import cfg
from oslo_log import log as logging

from wsgisvc import backend, recycling

LOG = logging.getLogger(__name__)

# Asks a watched worker for its threads' stacks (faulthandler, from C).
DUMP_SIGNAL = signal.SIGRTMIN
# Seconds between the request for a stuck worker's stacks and its SIGKILL,
# unless it says earlier that it wrote them.
DUMP_GRACE = 2.0
# A loop stamps at least this often, and more often for a short timeout.
MAX_STAMP_INTERVAL = 1.0
# Places in the shared page: the "exiting" mark, then one per loop.
_PLACES = 64
_EXITING = 0


@dataclasses.dataclass(frozen=True)
class Settings:
    """A service's watchdog options; every 0 means off. ``name`` is the
    prefix of the options they come from, for log lines."""

    name: str = ""
    worker_timeout: float = 0.0
    slow_request_seconds: float = 0.0

    @classmethod
    def for_api(cls, conf: cfg.ConfigOpts, name: str) -> Settings:
        """``<name>_worker_timeout`` and ``<name>_slow_request_seconds``."""
        return cls(
            name,
            conf[f"{name}_worker_timeout"],
            conf[f"{name}_slow_request_seconds"],
        )


OFF = Settings()


class Beat:
    """One loop's place in its worker's shared page."""

    __slots__ = ("_stamps", "_place", "interval")

    def __init__(self, stamps: memoryview, place: int, interval: float) -> None:
        self._stamps = stamps
        self._place = place
        self.interval = interval  # the loop turns at least this often
        self.beat()

    def beat(self) -> None:
        """The loop turned."""
        self._stamps[self._place] = time.monotonic()

    def release(self) -> None:
        """The loop ended: it is no longer watched."""
        self._stamps[self._place] = 0.0


class Watch:
    """What a parent shares with one watched worker: made before the fork,
    used by both sides after it (see the module's docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.name = settings.name  # the service's
        self.timeout = settings.worker_timeout
        self.option = f"{settings.name}_worker_timeout"
        self._memory = mmap.mmap(-1, _PLACES * 8)
        self._stamps = memoryview(self._memory).cast("d")
        self._claimed = 0
        # in memory, not in a directory that may be full or unwritable
        self._from_python = os.memfd_create("wsgisvc-stacks")  # the thread's
        self._from_c = os.memfd_create("wsgisvc-stacks-c")  # faulthandler's
        self._ask_read, self._ask_write = os.pipe()
        self.stuck_for = 0.0  # how long it had not turned, when found
        self.asked_at: float | None = None  # found stuck: stacks asked for
        self.signalled_at: float | None = None  # DUMP_SIGNAL sent
        self.killed = False  # SIGKILL sent

    # --- in the parent ----------------------------------------------------------

    def after_fork(self) -> None:
        """In the parent: the worker's end of the pipe is the worker's."""
        os.close(self._ask_read)
        self._ask_read = -1

    def stale(self, now: float) -> float | None:
        """Seconds since the loop that turned least recently turned; None
        while the worker is not armed, or is exiting."""
        stamps = self._stamps
        if stamps[_EXITING]:
            return None
        armed = [at for at in stamps[1:] if at]
        return now - min(armed) if armed else None

    def deadline(self) -> float | None:
        """When the parent's loop must look at this worker next."""
        if self.killed:
            return None
        if self.signalled_at is not None:
            return self.signalled_at + DUMP_GRACE
        if self.asked_at is not None:
            return self.asked_at + DUMP_GRACE
        now = time.monotonic()
        stale = self.stale(now)
        return None if stale is None else now - stale + self.timeout

    def ask_for_stacks(self, stuck_for: float) -> None:
        """The worker's watchdog thread writes every thread's and greenthread's
        stack when it gets the GIL, and says ``stacks-written``."""
        self.stuck_for, self.asked_at = stuck_for, time.monotonic()
        try:
            backend.os_write(self._ask_write, b"?")
        except BrokenPipeError:
            pass  # it exited meanwhile: reaped next

    def dump_and_exit(self, pid: int) -> None:
        """No answer within DUMP_GRACE (the GIL is held): worker ``pid``
        writes its threads' stacks from C, then ends by ``DUMP_SIGNAL``."""
        self.signalled_at = time.monotonic()
        try:
            os.kill(pid, DUMP_SIGNAL)
        except ProcessLookupError:
            pass  # it exited meanwhile: reaped next

    def stacks(self) -> str:
        """What the worker wrote: from its watchdog thread, else from C."""
        for fd in (self._from_python, self._from_c):
            text = os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")
            if text.strip():
                return text.strip("\n")
        return "(none written)"

    def close(self) -> None:
        """Release everything; in the parent once the worker is reaped, in
        a worker for its siblings' watches."""
        self._stamps.release()
        self._memory.close()
        for fd in (self._from_python, self._from_c, self._ask_read, self._ask_write):
            if fd >= 0:
                os.close(fd)

    # --- in the worker ----------------------------------------------------------

    def in_worker(self) -> None:
        """In the new worker: the watchdog thread, and faulthandler on
        DUMP_SIGNAL; from now on its loops claim places."""
        global _this_worker
        os.close(self._ask_write)
        self._ask_write = -1
        # chain: once written, DUMP_SIGNAL's default action (terminate) follows,
        # so the worker's end tells its parent the dump is whole
        signal.signal(DUMP_SIGNAL, signal.SIG_DFL)
        faulthandler.register(
            DUMP_SIGNAL, file=self._from_c, all_threads=True, chain=True
        )
        backend.os_thread(self._write_stacks, "watchdog")
        _this_worker = self

    def claim(self) -> Beat:
        """A place for one more loop of this worker (the last is shared past
        ``_PLACES - 1`` loops)."""
        self._claimed = min(self._claimed + 1, _PLACES - 1)
        return Beat(self._stamps, self._claimed, self.interval)

    @property
    def interval(self) -> float:
        return min(MAX_STAMP_INTERVAL, self.timeout / 4)

    def disarm(self) -> None:
        """The worker is on its way out: not stuck, whatever its loops do."""
        self._stamps[_EXITING] = 1.0

    def _write_stacks(self) -> None:
        """The watchdog thread (native): wait for the parent's question, then
        answer it, in one write. It needs the GIL: if the stuck code holds
        it, this never runs, and the parent falls back on faulthandler."""
        if not backend.os_read(self._ask_read, 1):
            return  # the parent is gone
        text = "\n\n".join(_all_stacks())
        backend.os_write(self._from_python, text.encode(errors="replace"))
        recycling.tell_parent("stacks-written")


def _all_stacks() -> list[str]:
    """Every thread's stack but the calling one's, then every parked
    greenthread's, as faulthandler writes them (without its limit of 100
    threads); threads or greenthreads with the same stack (an idle pool's) are
    written once, with their count."""
    me = backend.current_os_thread()
    threads = [
        (ident, format_stack(frame))
        for ident, frame in sys._current_frames().items()
        if ident != me
    ]
    greenthreads = [
        (id(frame), format_stack(frame)) for frame in backend.greenthread_frames()
    ]
    return _once_each("Thread", threads) + _once_each("Greenthread", greenthreads)


def _once_each(kind: str, stacks: list[tuple[int, str]]) -> list[str]:
    alike: dict[str, list[int]] = {}
    for ident, stack in stacks:
        alike.setdefault(stack, []).append(ident)
    return [
        f"{kind} {idents[0]:#x}"
        + (f" and {len(idents) - 1} more alike" if len(idents) > 1 else "")
        + f" (most recent call first):\n{stack}"
        for stack, idents in alike.items()
    ]


# The watch of this process, in a watched worker; None elsewhere.
_this_worker: Watch | None = None


def for_service(service: object) -> Watch | None:
    """A new Watch for a worker of ``service``, or None when it is not watched."""
    settings = getattr(service, "watchdog", OFF)
    return Watch(settings) if settings.worker_timeout else None


def forget_in_child(watches: Iterable[Watch]) -> None:
    """In a new worker: its siblings' watches are theirs."""
    for watch in watches:
        watch.close()


def loop_heartbeat() -> Beat | None:
    """A place for a loop that starts in this process, if it is watched."""
    return None if _this_worker is None else _this_worker.claim()


def disarm() -> None:
    """This worker is exiting: its parent does not judge it stuck any more."""
    if _this_worker is not None:
        _this_worker.disarm()


def format_stack(frame: FrameType | None) -> str:
    """``frame`` and its callers, innermost first, as faulthandler writes them."""
    lines = []
    while frame is not None:
        code = frame.f_code
        lines.append(
            f'  File "{code.co_filename}", line {frame.f_lineno} in {code.co_name}'
        )
        frame = frame.f_back
    return "\n".join(lines) or "  (no Python frame)"


# --- slow requests ---------------------------------------------------------------


class _Request:
    __slots__ = ("started", "method", "target", "task", "logged")

    def __init__(self, started: float, method: str, target: str, task) -> None:
        self.started = started
        self.method = method
        self.target = target
        self.task = task
        self.logged = False


class SlowRequests:
    """The requests in flight on one server; each one that runs for
    ``seconds`` has its stack logged once, by a native thread of its own."""

    def __init__(self, seconds: float, option: str) -> None:
        self.seconds = seconds
        self.option = option
        self._in_flight: set[_Request] = set()
        self._closed = False
        self._current_task = backend.current_task  # looked up once, not per request
        backend.os_thread(self._watch, "slow-requests")

    def begin(self, method: str, target: str, started: float) -> _Request:
        """A request began at ``started`` (monotonic); give it to :meth:`end`."""
        request = _Request(started, method, target, self._current_task())
        self._in_flight.add(request)
        return request

    def end(self, request: _Request) -> None:
        self._in_flight.discard(request)

    def close(self) -> None:
        """The server is done: the thread ends at its next look."""
        self._closed = True

    def _watch(self) -> None:
        while not self._closed:
            now = time.monotonic()
            next_look = now + self.seconds  # a request that begins later is due later
            for request in list(self._in_flight):
                due = request.started + self.seconds
                if request.logged:
                    continue
                if due <= now:
                    self._log(request, now)
                else:
                    next_look = min(next_look, due)
            backend.os_sleep(max(0.0, next_look - time.monotonic()))

    def _log(self, request: _Request, now: float) -> None:
        request.logged = True
        LOG.warning(
            "request %s %s has run for %.1f s (%s = %g), in pid %d; its stack, "
            "most recent call first:\n%s",
            request.method,
            request.target,
            now - request.started,
            self.option,
            self.seconds,
            os.getpid(),
            format_stack(backend.task_frame(request.task)),
        )


def slow_requests(settings: Settings) -> SlowRequests | None:
    """A server's SlowRequests when ``<name>_slow_request_seconds`` is set."""
    if not settings.slow_request_seconds:
        return None
    option = f"{settings.name}_slow_request_seconds"
    return SlowRequests(settings.slow_request_seconds, option)


__all__ = [
    "DUMP_SIGNAL",
    "OFF",
    "Beat",
    "Settings",
    "SlowRequests",
    "Watch",
    "disarm",
    "for_service",
    "forget_in_child",
    "format_stack",
    "loop_heartbeat",
    "slow_requests",
]
