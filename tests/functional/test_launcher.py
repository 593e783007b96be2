"""The launchers as an operator meets them: real process trees, real signals."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from tests.functional._launcher_util import Target, sigterm_and_wait, wait_gone
from tests.helpers import alive, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def target(tmp_path):
    t = Target(tmp_path)
    yield t
    t.stop()


# --- choosing a launcher ------------------------------------------------------


@pytest.mark.parametrize(
    "workers, launcher", [(None, "ServiceLauncher"), (1, "ServiceLauncher")]
)
def test_one_worker_runs_in_process(target, workers, launcher):
    options = {} if workers is None else {"workers": workers}
    target.start(**options)
    wait_for(lambda: target.events("start"))
    assert target.events("launcher") == [(target.pid, "launcher", launcher)]
    assert target.started_pids() == [target.pid]
    assert target.workers() == []
    assert sigterm_and_wait(target) == 0


def test_several_workers_fork(target):
    target.start(workers=3)
    pids = target.wait_workers(3)
    assert target.events("launcher") == [(target.pid, "launcher", "ProcessLauncher")]
    assert target.pid not in pids
    assert sigterm_and_wait(target) == 0


# --- respawning ---------------------------------------------------------------


@pytest.mark.parametrize("signo", [signal.SIGKILL, signal.SIGTERM])
def test_dead_worker_is_respawned(target, signo):
    target.start(workers=2)
    before = target.wait_workers(2)
    victim = before[0]
    time.sleep(1.0)  # let the worker count as healthy: no crash back-off applies
    killed_at = time.monotonic()
    os.kill(victim, signo)
    after = target.wait_workers(2, timeout=2.0, replacing=[victim])
    respawn = time.monotonic() - killed_at
    assert before[1] in after
    name = signal.Signals(signo).name
    how = f"killed by {name}" if signo == signal.SIGKILL else "exited with status 0"
    assert re.search(
        rf"worker {victim} (was )?{how}; respawning in 0\.0 s", target.log()
    )
    print(f"respawn after {name}: {respawn:.3f} s")


def test_worker_crashing_at_start_backs_off(target):
    target.start(workers=2, exit_at_start=3)
    wait_for(lambda: len(re.findall("respawning in", target.log())) >= 6, 20)
    log = target.log()
    delays = [float(d) for d in re.findall(r"respawning in ([\d.]+) s", log)]
    # Per slot: 1 s, 2 s, 4 s ... while it keeps crashing: never a fork loop.
    assert sorted(delays[:6]) == [1.0, 1.0, 2.0, 2.0, 4.0, 4.0]
    assert "exited with status 3" in log
    assert len(re.findall(r"started worker (\d+)", log)) <= 8
    target.signal(signal.SIGTERM)
    assert target.exit_status() == 0


# --- stopping -----------------------------------------------------------------


def test_sigterm_lets_in_flight_work_finish(target):
    target.start(workers=2, stop_delay=1.0)
    pids = target.wait_workers(2)
    assert sigterm_and_wait(target) == 0
    finished = {pid for pid, _, _ in target.events("wait-end")}
    assert set(pids) <= finished
    stops = [pid for pid, _, _ in target.events("stop") if pid in pids]
    assert sorted(stops) == pids  # each worker's stop() ran exactly once


def test_sigterm_kills_workers_past_the_timeout(target):
    target.start(workers=2, stop_delay=60, default={"graceful_shutdown_timeout": 1})
    pids = target.wait_workers(2)
    began = time.monotonic()
    assert sigterm_and_wait(target) == 1
    assert time.monotonic() - began < 5
    assert not any(alive(pid) for pid in pids)


def test_sigint_stops_at_once(target):
    target.start(workers=2, stop_delay=60)
    pids = target.wait_workers(2)
    began = time.monotonic()
    target.signal(signal.SIGINT)
    assert target.exit_status() == 1
    assert time.monotonic() - began < 3
    assert not any(alive(pid) for pid in pids)


def test_workers_exit_when_the_parent_is_killed(target):
    target.start(workers=3, stop_delay=60)
    pids = target.wait_workers(3)
    target.signal(signal.SIGKILL)
    took = wait_gone(pids, timeout=5)
    print(f"workers gone {took:.3f} s after SIGKILL to the parent")
    # The design says within 1 s (measured: 0.03-0.2 s); the margin is for a
    # loaded 2-core CI machine.
    assert took < 1.5
    assert "parent process died" in target.log()


# --- SIGHUP -------------------------------------------------------------------


def test_sighup_reload_replaces_workers_with_new_config(target):
    target.start(workers=2, greeting="before")
    old = target.wait_workers(2)
    target.write_config(workers=2, greeting="after")
    target.signal(signal.SIGHUP)
    new = target.wait_workers(2, replacing=old)
    greetings = {pid: v for pid, _, v in target.events("start")}
    assert [greetings[pid] for pid in new] == ["after", "after"]
    assert (target.pid, "reset", "after") in target.events("reset")
    wait_gone(old, timeout=10)  # the old ones drained and exited
    assert sigterm_and_wait(target) == 0


def test_two_sighups_then_sigterm(target):
    target.start(workers=2)
    first = target.wait_workers(2)
    target.signal(signal.SIGHUP)
    second = target.wait_workers(2, replacing=first)
    target.signal(signal.SIGHUP)
    target.wait_workers(2, replacing=second)
    assert alive(target.pid)
    assert sigterm_and_wait(target) == 0


def test_sighup_mutate_keeps_workers(target):
    target.start(workers=2, greeting="before", restart_method="mutate")
    pids = target.wait_workers(2)
    target.write_config(workers=2, greeting="after", restart_method="mutate")
    target.signal(signal.SIGHUP)
    resets = wait_for(
        lambda: {p for p, _, v in target.events("reset") if v == "after"} >= set(pids)
    )
    assert resets
    assert target.workers() == pids
    assert sigterm_and_wait(target) == 0


def test_sighup_in_a_foreground_terminal_stops(tmp_path):
    """stdout is the controlling terminal and we are its foreground group."""
    import pty

    from tests.functional._launcher_util import TARGET
    from tests.helpers import PYTHON

    t = Target(tmp_path)
    t.write_config(workers=2)
    pid, master = pty.fork()
    if pid == 0:  # the child: a session leader with the pty as its terminal
        os.execv(PYTHON, [PYTHON, str(TARGET), "--config-file", str(t.conf_file)])
    # Read the terminal, or the launcher blocks writing its log to it.
    reader = threading.Thread(target=_drain, args=(master,), daemon=True)
    reader.start()
    try:
        wait_for(lambda: len(t.started_pids()) == 2)
        os.kill(pid, signal.SIGHUP)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert len(t.events("wait-end")) == 2  # stopped, not restarted
        assert len(t.events("start")) == 2
    finally:
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(master)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass  # the terminal closed


# --- ServiceLauncher ----------------------------------------------------------


def test_service_launcher_sigterm_finishes_work(target):
    target.start(stop_delay=0.5)
    wait_for(lambda: target.events("start"))
    assert sigterm_and_wait(target) == 0
    assert [e for _, e, _ in target.events()][-3:] == ["stop", "wait-begin", "wait-end"]


def test_service_launcher_timeout_exits_1(target):
    target.start(stop_delay=60, default={"graceful_shutdown_timeout": 1})
    wait_for(lambda: target.events("start"))
    assert sigterm_and_wait(target) == 1


def test_service_launcher_sigint_exits_1_at_once(target):
    target.start(stop_delay=60)
    wait_for(lambda: target.events("start"))
    target.signal(signal.SIGINT)
    assert target.exit_status(timeout=5) == 1
    assert target.events("wait-end") == []


def test_service_launcher_sighup_restarts_with_new_config(target):
    target.start(greeting="before")
    wait_for(lambda: target.events("start"))
    target.write_config(greeting="after")
    target.signal(signal.SIGHUP)
    wait_for(lambda: len(target.events("start")) == 2)
    assert [v for _, _, v in target.events("start")] == ["before", "after"]
    assert target.events("reset") == [(target.pid, "reset", "after")]
    assert sigterm_and_wait(target) == 0


def test_service_launcher_start_failure_exits_1(target):
    target.start(raise_at_start=True)
    assert target.exit_status() == 1
    assert "start failed on purpose" in target.log()
    assert "Traceback" in target.log()
