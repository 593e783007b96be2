"""The upgrade (SIGUSR1 to a ProcessLauncher's parent): start the binary anew,
with new code, on the listening sockets the old one serves, and let the old
generation go only once the new one serves. No connection is refused, no
request is cut.

::

    old parent                               new parent (the same argv and
                                             environment, exec'd afresh)
    fork; in the child: the listening
    sockets to fds 3, 4, ..., LISTEN_FDS,
    LISTEN_FDNAMES (the services' names),
    LISTEN_PID, WSGISVC_UPGRADE_FD; exec     its services take the sockets by
                                             name (``systemd.activated_socket``)
                                             and fork their workers; when every
                                             worker serves: "ready" on the pipe
    "ready": MAINPID=<new pid> to systemd
    (only the main pid may move it), then
    a graceful stop of its own workers;
    exit 0

The pipe is the channel because a signal could not say who sent it. A new
binary that exits first, or is not ready within ``UPGRADE_TIMEOUT``, leaves
the old generation serving, with one log line saying why (the late one gets
SIGTERM). The parent's side of this lives in ``process_launcher``; this
module holds what both generations do.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

from oslo_log import log as logging

from wsgisvc import backend, pidfile, signals, systemd
from wsgisvc.signals import Action

LOG = logging.getLogger(__name__)

# Names the write end of the pipe on which the new parent says "ready".
ENV = "WSGISVC_UPGRADE_FD"
READY = b"ready"
# How long the new binary has to import, build its services and fork workers
# that all serve.
UPGRADE_TIMEOUT = 60.0
# Held while an upgrade is in progress, acted on once it ended (by the old
# parent only if the upgrade failed: otherwise it is stopping).
HELD_ACTIONS = (Action.RELOAD, Action.ADD_WORKER, Action.RETIRE_WORKER)


class Upgrade:
    """An upgrade in progress, as the old parent sees it."""

    def __init__(self, pid: int, read_fd: int) -> None:
        self.pid = pid
        self.deadline = time.monotonic() + UPGRADE_TIMEOUT
        self.held: list[int] = []  # signals to act on once this ends
        self._read_fd: int | None = read_fd
        os.set_blocking(read_fd, False)

    def fds(self) -> tuple[int, ...]:
        """What the old parent's loop sleeps on (until the pipe says EOF)."""
        return () if self._read_fd is None else (self._read_fd,)

    def ready(self) -> bool:
        """True once the new parent said its workers serve."""
        if self._read_fd is None:
            return False
        try:  # eventlet's patched os.read would park the loop until "ready"
            data = backend.os_read(self._read_fd, len(READY))
        except BlockingIOError:
            return False
        if data != READY:  # EOF: it exited, or closed the pipe; reaping says how
            self.close()
        return data == READY

    def timed_out(self) -> bool:
        return time.monotonic() >= self.deadline

    def close(self) -> None:
        if self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None


def start(
    sockets: dict[str, socket.socket],
    handled: tuple[int, ...],
    forget_in_child: Callable[[], None],
) -> Upgrade:
    """Fork, and exec the binary anew in the child with ``sockets`` passed as
    socket activation passes them; return at once.

    ``handled`` are blocked around the fork (``signals.fork``); the child
    calls ``forget_in_child`` (drop the parent's wakeup pipe and handlers)
    before unblocking, so a signal meant for the old parent never lands in
    its queue from here. The child runs no code that could take a lock
    another thread held at the fork (no logging) between fork and exec.
    """
    read_fd, write_fd = os.pipe()
    argv = [sys.executable, *sys.orig_argv[1:]]  # how this binary was started
    env = dict(os.environ)
    if sockets:
        env["LISTEN_FDS"] = str(len(sockets))
        env["LISTEN_FDNAMES"] = ":".join(sockets)
    env[ENV] = str(systemd.LISTEN_FDS_START + len(sockets))
    fds = [sock.fileno() for sock in sockets.values()] + [write_fd]
    pid, mask = signals.fork(handled)
    if pid == 0:
        try:
            forget_in_child()
            signals.unblock(mask)
            _exec(argv, env, fds)
        finally:
            os._exit(127)
    os.close(write_fd)
    return Upgrade(pid, read_fd)


def _exec(argv: list[str], env: dict[str, str], fds: list[int]) -> None:
    """In the forked child: ``fds`` to 3, 4, ... (inheritable), then exec."""
    # first above every target, so no move overwrites a descriptor still to move
    lowest = systemd.LISTEN_FDS_START + len(fds)
    above = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest) for fd in fds]
    for target, fd in enumerate(above, start=systemd.LISTEN_FDS_START):
        os.dup2(fd, target, inheritable=True)
    env["LISTEN_PID"] = str(os.getpid())
    try:
        os.execve(argv[0], argv, env)
    except OSError as exc:
        backend.os_write(
            2, f"upgrade: cannot exec {argv[0]}: {exc.strerror}\n".encode()
        )


# --- the new parent's side ---------------------------------------------------

_handover_fd: int | None = None


def take_handover(pid_file: str | None = None) -> None:
    """In the top process of a binary, before any fork: if an upgrade started
    it, keep the pipe to the old parent for :func:`announce_ready` (and take
    its name out of the environment, for the children); else this process is
    the service from now on: name it in ``pid_file``."""
    global _handover_fd
    value = os.environ.pop(ENV, None)
    if _handover_fd is not None:
        return
    if value is not None:
        try:
            fd = int(value)
            os.set_inheritable(fd, False)
        except (ValueError, OSError):
            LOG.warning("%s=%r names no pipe; not telling an old parent", ENV, value)
        else:
            _handover_fd = fd
            return  # named in pid_file once it serves (announce_ready)
    pidfile.write(pid_file)


def handing_over() -> bool:
    """True in a new parent that has not told the old one it serves yet."""
    return _handover_fd is not None


def announce_ready(pid_file: str | None = None) -> None:
    """``READY=1`` to systemd; in a binary an upgrade started, "ready" to the
    old parent instead, which then names this pid ``MAINPID`` to systemd
    (which takes that, and READY=1, from the main pid only), once this pid
    is in ``pid_file``."""
    global _handover_fd
    fd, _handover_fd = _handover_fd, None
    if fd is None:
        systemd.notify("READY=1")
        return
    pidfile.write(pid_file)
    try:
        backend.os_write(fd, READY)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        LOG.warning("the old parent is gone before the upgrade ended")
        systemd.notify("READY=1")
    finally:
        os.close(fd)


def _forget_in_child() -> None:
    """A worker forked by the new parent does not hold its pipe."""
    global _handover_fd
    if _handover_fd is not None:
        os.close(_handover_fd)
        _handover_fd = None


os.register_at_fork(after_in_child=_forget_in_child)


def terminate(pid: int) -> None:
    """SIGTERM to a new parent that will not take over."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
