"""Signals: the one place signal numbers are mapped to what they mean.

Handlers do no work. Python writes the number of every handled signal to a
wakeup pipe (``signal.set_wakeup_fd``); the launcher's loop sleeps in ``select``
on that pipe and acts on what it reads. So a signal never interrupts a launcher
half-way through forking or reaping, and an idle launcher sleeps in the kernel
instead of polling.
"""

from __future__ import annotations

import enum
import errno
import os
import signal
import sys

from eventlet import patcher
from eventlet.green import select

# The wakeup pipe is non-blocking and must stay so: monkey patching turns os.read
# and os.write into calls that park the greenthread on EAGAIN, so use the originals.
_unpatched_os = patcher.original("os")


class SignalExit(SystemExit):
    """Raised inside a launcher's loop when a signal asks the process to stop."""

    def __init__(self, signo: int, exccode: int = 1) -> None:
        super().__init__(exccode)
        self.signo = signo


class Action(enum.Enum):
    """What a launcher does about a signal."""

    GRACEFUL_STOP = "graceful stop"
    FAST_STOP = "stop at once"
    RESTART = "reload and restart"
    CHILD_EXITED = "reap children"


def is_daemon() -> bool:
    """True unless stdout is the terminal and we are its foreground process group.

    A foreground process getting SIGHUP has lost its terminal and should stop;
    a daemon getting SIGHUP is being asked to reload.
    """
    try:
        return os.getpgrp() != os.tcgetpgrp(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        # Not a tty (ENOTTY), stdout closed or replaced by an object without fd.
        return True


def action_for(signo: int) -> Action:
    """Map a signal number to the launcher action it requests."""
    if signo == signal.SIGTERM:
        return Action.GRACEFUL_STOP
    if signo == signal.SIGINT:
        return Action.FAST_STOP
    if signo == signal.SIGHUP:
        return Action.RESTART if is_daemon() else Action.GRACEFUL_STOP
    if signo == signal.SIGCHLD:
        return Action.CHILD_EXITED
    raise ValueError(f"wsgisvc does not handle signal {signo}")


def signal_name(signo: int) -> str:
    try:
        return signal.Signals(signo).name
    except ValueError:
        return f"signal {signo}"


def _record_only(signo, frame):
    """Installed so that Python writes ``signo`` to the wakeup pipe; nothing else."""


# A wakeup byte that is not a signal: something in-process wants the loop to look
# again (a service finished starting, or failed).
_NUDGE = 0


class SignalHandler:
    """Owns the wakeup pipe and the handlers of the signals a launcher acts on."""

    def __init__(self, signals: tuple[int, ...]) -> None:
        self.signals = signals
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def install(self) -> None:
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signo in self.signals:
            signal.signal(signo, _record_only)
        if signal.SIGCHLD in self.signals:
            # Do not let a SIGCHLD abort a blocking system call half-way.
            signal.siginterrupt(signal.SIGCHLD, False)

    def close(self) -> None:
        """Forget the pipe; used by a forked child before it installs its own."""
        os.close(self._read_fd)
        os.close(self._write_fd)

    def nudge(self) -> None:
        """Wake the loop from inside the process (not from a signal handler)."""
        try:
            _unpatched_os.write(self._write_fd, bytes([_NUDGE]))
        except BlockingIOError:
            pass  # the pipe is full, so the loop is going to wake anyway

    def wait(
        self, timeout: float | None = None, watch_fds: tuple[int, ...] = ()
    ) -> tuple[list[int], list[int]]:
        """Sleep until a signal, a nudge, a watched fd or the timeout.

        Returns the signals received (in order, nudges left out) and the watched
        fds that became readable. The select is eventlet's, so greenthreads of
        the services in this process keep running while the loop sleeps.
        """
        if timeout is not None:
            timeout = max(0.0, timeout)
        try:
            ready, _, _ = select.select([self._read_fd, *watch_fds], [], [], timeout)
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
            ready = [self._read_fd]
        received: list[int] = []
        if self._read_fd in ready:
            received = self._drain()
        return [s for s in received if s != _NUDGE], [
            fd for fd in ready if fd != self._read_fd
        ]

    def _drain(self) -> list[int]:
        data = b""
        while True:
            try:
                chunk = _unpatched_os.read(self._read_fd, 512)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        return list(data)
