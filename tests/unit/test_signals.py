"""signals: the fork window, the queue, and what a SIGHUP means."""

from __future__ import annotations

import os
import pathlib
import pty
import re
import signal

import pytest

from wsgisvc import signals

SIGNO = signal.SIGUSR1  # one pytest leaves alone


@pytest.fixture
def handler():
    previous = signal.getsignal(SIGNO)
    handler = signals.SignalHandler((SIGNO,))
    handler.install()
    yield handler
    signal.set_wakeup_fd(-1)
    signal.signal(SIGNO, previous)
    os.close(handler._read_fd)
    os.close(handler._write_fd)


def test_a_signal_in_the_fork_window_reaches_the_child_not_the_parent(handler):
    """The child is signalled before it has handlers of its own: the signal
    waits, then reaches the child's own pipe, and never the parent's."""
    result_r, result_w = os.pipe()
    pid, mask = signals.fork((SIGNO,))
    if pid == 0:
        status = 1
        try:
            os.kill(os.getpid(), SIGNO)  # in the window: the child is not ready
            handler.forget_in_child()
            own = signals.SignalHandler((SIGNO,))
            own.install()
            signals.unblock(mask)  # the pending signal is delivered now
            os.write(result_w, own._read_pipe())
            status = 0
        finally:
            os._exit(status)
    os.close(result_w)
    _, status = os.waitpid(pid, 0)
    child_got = os.read(result_r, 64)
    os.close(result_r)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_got == bytes([SIGNO])  # once, in the child
    handler.wait(timeout=0)
    assert list(handler.queue) == []  # nothing in the parent's queue


def test_signals_are_queued_in_order_and_nudges_left_out(handler):
    os.kill(os.getpid(), SIGNO)
    handler.nudge()
    os.kill(os.getpid(), SIGNO)
    handler.wait(timeout=1)
    assert [handler.next(), handler.next(), handler.next()] == [SIGNO, SIGNO, None]


def test_sighup_reloads_unless_the_terminal_hung_up():
    assert signals.action_for(signal.SIGHUP) is signals.Action.RELOAD
    pid, master = pty.fork()
    if pid == 0:  # stdin, stdout, stderr: the pty
        code = 1
        try:
            before = signals.action_for(signal.SIGHUP)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            os.write(1, b"ready\n")
            os.read(0, 1)  # until the master is closed: EIO or EOF
        except OSError:
            pass
        finally:
            after = signals.action_for(signal.SIGHUP)
            ok = before is signals.Action.RELOAD and after is signals.Action.HANGUP
            code = 0 if ok else 3
            os._exit(code)
    assert os.read(master, 64).strip().endswith(b"ready")
    os.close(master)  # the terminal hangs up
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_raw_fds_are_read_and_written_through_the_backend_only():
    """Under eventlet, the patched ``os.read`` parks its caller until the fd
    is readable instead of raising BlockingIOError. The parent's loop, polling
    the upgrade pipe that way, sat until the new parent was ready while a
    SIGTERM waited (tests/functional/test_upgrade.py::
    test_a_stop_during_an_upgrade_leaves_no_process_behind). The backend's
    ``os_read`` and ``os_write`` are never parked."""
    root = pathlib.Path(signals.__file__).parent
    raw = re.compile(r"\bos\.(?:read|write)\(")
    offenders = {
        path.relative_to(root).as_posix()
        for path in root.rglob("*.py")
        if "backend" not in path.relative_to(root).parts
        and raw.search(path.read_text())
    }
    assert offenders == set()
