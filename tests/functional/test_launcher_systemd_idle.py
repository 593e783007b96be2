"""sd_notify readiness, the idle cost of a parent, and the wsgisvc-sample binary."""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import pytest

from tests.functional._launcher_util import Target, sigterm_and_wait
from tests.helpers import BIN, children, kill_group, spawn, wait_for


@pytest.fixture
def target(tmp_path, backend):
    t = Target(tmp_path, backend)
    yield t
    t.stop()


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(15)
    yield sock
    sock.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [1, 3])
def test_systemd_ready_once_services_started_then_stopping(
    target, notify_socket, workers
):
    target.start(workers=workers, env={"NOTIFY_SOCKET": notify_socket.getsockname()})
    assert notify_socket.recv(4096) == b"READY=1"
    # Every worker had started its service before the parent said READY.
    assert len(target.started_pids()) == workers
    target.signal(signal.SIGTERM)
    assert notify_socket.recv(4096) == b"STOPPING=1"
    assert target.exit_status() == 0
    notify_socket.settimeout(0.2)
    with pytest.raises(TimeoutError):
        notify_socket.recv(4096)  # nothing else: the workers told the parent only


@pytest.mark.timeout(60)
def test_systemd_ready_waits_for_every_slot_when_one_respawned_first(
    target, notify_socket, tmp_path
):
    """A worker that serves, dies and is respawned, and serves again before
    its sibling serves (issue 24): the parent counted READY=1 messages, two
    from one slot, and told systemd READY=1 with a worker still starting."""
    gate = tmp_path / "gate"
    gate.mkdir()
    target.start(
        workers=2,
        start_gate=gate,
        env={"NOTIFY_SOCKET": notify_socket.getsockname()},
    )
    first, second = wait_for(lambda: _starting(target, 2))
    _let_serve(target, gate, first)
    os.kill(first, signal.SIGKILL)
    respawned = wait_for(lambda: _starting(target, 3))[2]
    _let_serve(target, gate, respawned)
    target.signal(signal.SIGUSR2)  # acted on in the loop's next round, so
    wait_for(lambda: "report requested (SIGUSR2)" in target.log())  # READY=1
    notify_socket.setblocking(False)  # would be sent by now, were it due
    with pytest.raises(BlockingIOError):
        notify_socket.recv(4096)

    (gate / str(second)).touch()

    notify_socket.settimeout(15)
    assert notify_socket.recv(4096) == b"READY=1"
    assert sorted(target.started_pids()) == sorted([first, second, respawned])
    assert sigterm_and_wait(target) == 0


def _starting(target: Target, count: int) -> list[int] | None:
    pids = [pid for pid, _, _ in target.events("starting")]
    return pids if len(pids) >= count else None


def _let_serve(target: Target, gate, pid: int) -> None:
    """Open ``pid``'s start gate; return once its parent heard it serves."""
    (gate / str(pid)).touch()
    wait_for(lambda: re.search(rf"worker {pid} of .+ serving", target.log()))


def _cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` in seconds, at nanosecond resolution (schedstat)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


@pytest.mark.timeout(60)
def test_idle_parent_sleeps(target):
    """An idle 4-worker parent uses under 0.1% of a core: no polling loop."""
    target.start(workers=4)
    target.wait_workers(4)
    time.sleep(1)  # start-up is over
    before = _cpu_seconds(target.pid)
    time.sleep(10)
    used = _cpu_seconds(target.pid) - before
    print(f"idle parent used {used * 1000:.3f} ms of CPU in 10 s")
    assert used < 0.010
    assert sigterm_and_wait(target) == 0


@pytest.mark.timeout(60)
def test_sample_binary_forks_and_stops(tmp_path, backend):
    proc = spawn(
        [f"{BIN}/wsgisvc-sample", "--workers", "3", "--tick_interval", "0.1"],
        tmp_path / "sample.log",
        env={"WSGISVC_BACKEND": backend},
    )
    try:
        pids = wait_for(lambda: len(children(proc.pid)) == 3 and children(proc.pid))
        wait_for(lambda: "tick 1" in (tmp_path / "sample.log").read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        log = (tmp_path / "sample.log").read_text()
        for pid in pids:
            assert re.search(rf"worker {pid} exited with status 0", log)
    finally:
        kill_group(proc)
