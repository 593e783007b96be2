"""The eventlet backend: greenthreads on one hub per process.

The process is monkey patched (``wsgisvc.cmd``), so the standard library's
blocking calls park the calling greenthread; what must not be parked (the
signal pipe, a thread that has to run while the hub is blocked) uses the
unpatched originals kept by ``eventlet.patcher``.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from types import FrameType

import eventlet
import eventlet.hubs
import greenlet
from eventlet import patcher
from eventlet.green import select as _green_select

_os = patcher.original("os")
_threading = patcher.original("threading")

sleep = eventlet.sleep


class Task:
    """A function running on a greenthread of its own."""

    def __init__(self, fn: Callable, *args) -> None:
        self._thread = eventlet.spawn(fn, *args)

    def wait(self):
        return self._thread.wait()


def spawn(fn: Callable, *args) -> Task:
    return Task(fn, *args)


def spawn_after(seconds: float, fn: Callable, *args) -> None:
    eventlet.spawn_after(seconds, fn, *args)


def os_thread(fn: Callable, name: str, delay: float = 0.0):
    """Run ``fn`` on a real OS thread, ``delay`` seconds from now (``cancel()``
    the returned timer to call it off): it may block in unpatched calls, and
    runs even while the hub is blocked. It must not touch greenthreads or green
    sockets."""
    timer = _threading.Timer(delay, fn)
    timer.name, timer.daemon = name, True
    timer.start()
    return timer


class Event:
    """threading.Event's interface over a green event."""

    def __init__(self) -> None:
        self._event = eventlet.event.Event()

    def set(self) -> None:
        if not self._event.ready():
            self._event.send(True)

    def clear(self) -> None:
        if self._event.ready():  # so nobody waits on it
            self._event = eventlet.event.Event()

    def is_set(self) -> bool:
        return self._event.ready()

    def wait(self, timeout: float | None = None) -> bool:
        self._event.wait(timeout=timeout)
        return self._event.ready()


def wait_readable(fds: list[int], timeout: float | None) -> list[int]:
    """Green select: greenthreads of this process run while the loop sleeps."""
    ready, _, _ = _green_select.select(fds, [], [], timeout)
    return ready


os_read = _os.read
os_write = _os.write
os_sleep = patcher.original("time").sleep


def current_task() -> greenlet.greenlet:
    """What serves the calling code: its greenthread."""
    return greenlet.getcurrent()


def task_frame(task: greenlet.greenlet) -> FrameType | None:
    """The innermost frame of ``task``, from another OS thread: a parked
    greenthread keeps its own; the one running now is the hub's thread's."""
    frame = task.gr_frame
    if frame is None and task:  # started, not dead: running on the hub's thread
        frame = sys._current_frames().get(_threading.main_thread().ident)
    return frame


def current_os_thread() -> int:
    """The calling OS thread's id (a greenthread's is its hub's)."""
    return _threading.get_ident()


def greenthread_frames() -> list[FrameType]:
    """The innermost frame of every parked greenthread (the running one is its
    thread's current frame). Found by the collector, as eventlet keeps no list."""
    return [
        thing.gr_frame
        for thing in gc.get_objects()
        if isinstance(thing, greenlet.greenlet) and thing.gr_frame is not None
    ]


def after_fork_in_child() -> None:
    """A fresh hub: never share the parent's epoll."""
    eventlet.hubs.use_hub()


def describe() -> str:
    return (
        f"eventlet {eventlet.__version__} (in maintenance mode; "
        "WSGISVC_BACKEND=threading runs without it)"
    )
