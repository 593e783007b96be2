"""The threading backend: native threads, nothing patched, eventlet never imported."""

from __future__ import annotations

import os
import platform
import select
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

sleep = time.sleep
Event = threading.Event


class Task:
    """A function running on a daemon thread of its own."""

    def __init__(self, fn: Callable, *args) -> None:
        self._result = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(fn, *args), name=_name(fn), daemon=True
        )
        self._thread.start()

    def _run(self, fn: Callable, *args) -> None:
        try:
            self._result = fn(*args)
        except BaseException as error:
            self._error = error

    def wait(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


def _name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or "wsgisvc-task"


def spawn(fn: Callable, *args) -> Task:
    return Task(fn, *args)


def spawn_after(seconds: float, fn: Callable, *args) -> None:
    timer = threading.Timer(seconds, fn, args)
    timer.daemon = True
    timer.start()


def os_thread(fn: Callable, name: str, delay: float = 0.0) -> threading.Timer:
    timer = threading.Timer(delay, fn)
    timer.name, timer.daemon = name, True
    timer.start()
    return timer


def wait_readable(fds: list[int], timeout: float | None) -> list[int]:
    ready, _, _ = select.select(fds, [], [], timeout)
    return ready


os_read = os.read
os_write = os.write
os_sleep = time.sleep


def current_task() -> int:
    """What serves the calling code: its thread."""
    return threading.get_ident()


def task_frame(task: int) -> FrameType | None:
    """The innermost frame of thread ``task`` (None once it ended)."""
    return sys._current_frames().get(task)


def current_os_thread() -> int:
    """The calling thread's id."""
    return threading.get_ident()


def greenthread_frames() -> list[FrameType]:
    """No greenthreads here: every stack is a thread's."""
    return []


def after_fork_in_child() -> None:
    """Nothing to renew: threads other than the forking one do not survive fork."""


def describe() -> str:
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"native threads ({python})"
