"""Signals: the one place signal numbers are mapped to what they mean, and the
queue a launcher's loop takes them from.

Handlers do no work. Python writes the number of every handled signal to a
wakeup pipe (``signal.set_wakeup_fd``); the launcher's loop sleeps on that pipe
(``backend.wait_readable``), moves what it reads into a queue, and acts on the
queue in order. So a signal never interrupts a launcher half-way through forking
or reaping, a signal that arrives while the launcher is busy (forking, draining)
waits its turn instead of being dropped, and an idle launcher sleeps in the
kernel instead of polling.

Across ``fork()`` the handled signals are blocked (:func:`fork`): a signal sent
the instant a worker exists stays pending until the worker has dropped the
parent's wakeup pipe and handlers and installed its own, and then reaches the
worker, once.
"""

from __future__ import annotations

import collections
import enum
import errno
import os
import signal

from wsgisvc import backend


class Action(enum.Enum):
    """What a launcher does about a signal."""

    GRACEFUL_STOP = "graceful stop"
    FAST_STOP = "stop at once"
    RELOAD = "reload"
    HANGUP = "terminal hung up: graceful stop"
    CHILD_EXITED = "reap children"
    ADD_WORKER = "one more worker per service"
    RETIRE_WORKER = "one worker fewer per service (in a worker: retire)"
    REPORT = "write a report to the log"
    UPGRADE = "start the binary anew on the listening sockets, then stop"


def terminal_hung_up() -> bool:
    """True when one of stdin, stdout, stderr is a terminal that hung up.

    A hang-up (the terminal closed, its pty master went away) makes the kernel
    swap the terminal's file operations for ones that fail with EIO before it
    sends SIGHUP, so at the time a launcher looks the answer is settled. A
    SIGHUP from ``kill`` finds the terminal alive (or no terminal at all) and
    means "reload", in a foreground terminal too. This also covers the shell
    that forwards its own hang-up to its jobs: the sender is a process, but the
    terminal is gone.
    """
    for fd in (0, 1, 2):
        try:
            os.tcgetpgrp(fd)
        except OSError as error:
            if error.errno == errno.EIO:
                return True
    return False


def action_for(signo: int) -> Action:
    """Map a signal number to the launcher action it requests."""
    if signo == signal.SIGTERM:
        return Action.GRACEFUL_STOP
    if signo == signal.SIGINT:
        return Action.FAST_STOP
    if signo == signal.SIGHUP:
        return Action.HANGUP if terminal_hung_up() else Action.RELOAD
    if signo == signal.SIGCHLD:
        return Action.CHILD_EXITED
    if signo == signal.SIGTTIN:
        return Action.ADD_WORKER
    if signo == signal.SIGTTOU:
        return Action.RETIRE_WORKER
    if signo == signal.SIGUSR1:
        return Action.UPGRADE
    if signo == signal.SIGUSR2:
        return Action.REPORT
    raise ValueError(f"wsgisvc does not handle signal {signo}")


def signal_name(signo: int) -> str:
    try:
        return signal.Signals(signo).name
    except ValueError:
        return f"signal {signo}"


def _record_only(signo, frame):
    """Installed so that Python writes ``signo`` to the wakeup pipe; nothing else."""


# A wakeup byte that is not a signal: something in-process wants the loop to look
# again (a service finished starting, or failed; a drain ended).
_NUDGE = 0


class SignalHandler:
    """Owns the wakeup pipe, the handlers of the signals a launcher acts on, and
    the queue of signals received and not yet acted on."""

    def __init__(self, signals: tuple[int, ...]) -> None:
        self.signals = signals
        self.queue: collections.deque[int] = collections.deque()
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

    def forget_in_child(self) -> None:
        """In a forked child, with the signals still blocked: drop the parent's
        wakeup pipe and handlers (the child installs its own, then unblocks)."""
        signal.set_wakeup_fd(-1)
        for signo in self.signals:
            signal.signal(signo, signal.SIG_DFL)
        os.close(self._read_fd)
        os.close(self._write_fd)

    def nudge(self) -> None:
        """Wake the loop from inside the process (not from a signal handler)."""
        try:
            backend.os_write(self._write_fd, bytes([_NUDGE]))
        except BlockingIOError:
            pass  # the pipe is full, so the loop is going to wake anyway

    def wait(
        self, timeout: float | None = None, watch_fds: tuple[int, ...] = ()
    ) -> list[int]:
        """Sleep until a signal, a nudge, a watched fd or the timeout.

        Signals received are appended to ``queue`` (in order, nudges left out);
        returns the watched fds that became readable. The sleep is the
        backend's, so the services' work in this process goes on meanwhile.
        """
        if self.queue:
            timeout = 0  # work is waiting: only look, do not sleep
        elif timeout is not None:
            timeout = max(0.0, timeout)
        try:
            ready = backend.wait_readable([self._read_fd, *watch_fds], timeout)
        except InterruptedError:
            ready = [self._read_fd]
        if self._read_fd in ready:
            self.queue.extend(s for s in self._read_pipe() if s != _NUDGE)
        return [fd for fd in ready if fd != self._read_fd]

    def next(self) -> int | None:
        """The oldest signal not acted on yet, or None."""
        return self.queue.popleft() if self.queue else None

    def _read_pipe(self) -> bytes:
        data = b""
        while True:
            try:
                chunk = backend.os_read(self._read_fd, 512)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        return data


def ignore_from_now(signals: tuple[int, ...]) -> None:
    """SIG_IGN for ``signals``, in a process that only exits from here on.

    Python's finalization puts back the default handler of every signal that
    has a Python one (not of an ignored one), so a SIGTERM or SIGINT in the
    last milliseconds of an exit would end the process by that signal, and
    a service manager would see that instead of the status it chose.
    """
    for signo in signals:
        signal.signal(signo, signal.SIG_IGN)


def fork(signals: tuple[int, ...]) -> tuple[int, set[int]]:
    """``os.fork()`` with ``signals`` blocked around it.

    The parent unblocks at once (what arrived meanwhile is delivered to it
    then). The child returns with them still blocked and the mask to restore:
    it calls :meth:`SignalHandler.forget_in_child`, installs its own handlers,
    then :func:`unblock`, so a signal pending since the fork reaches the child's
    own handler and wakeup pipe, never the parent's.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        raise
    if pid != 0:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return pid, previous


def unblock(previous: set[int]) -> None:
    """Restore the mask :func:`fork` returned to the child."""
    signal.pthread_sigmask(signal.SIG_SETMASK, previous)
