"""Shared test helpers: waiting for conditions and owning the processes we start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.02,
    sleep: Callable[[float], None] = time.sleep,
    what: str = "",
) -> T:
    """Return the first truthy value of ``predicate()``; fail after ``timeout``.

    Pass ``sleep=eventlet.sleep`` to let greenthreads run while waiting.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"condition not met within {timeout} s: {what or predicate}"
            )
        sleep(interval)


def green_wait_for(
    predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, what=""
) -> T:
    """``wait_for`` that lets the backend's other work (greenthreads on eventlet)
    run while it waits."""
    from wsgisvc import backend

    return wait_for(predicate, timeout, interval, sleep=backend.sleep, what=what)


def spawn(args: list[str], log_path, **kwargs) -> subprocess.Popen:
    """Start ``args`` in a session of its own, stdout and stderr to ``log_path``."""
    log = open(log_path, "ab")
    env = dict(os.environ, PYTHONUNBUFFERED="1", **kwargs.pop("env", {}))
    return subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
        **kwargs,
    )


def kill_group(proc: subprocess.Popen) -> None:
    """End ``proc``'s whole process group (by its PGID, which is its PID)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False  # gone, or exiting while we read


def children(pid: int) -> list[int]:
    """Live child PIDs of ``pid``."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return [p for p in found if alive(p)]


PYTHON = sys.executable
BIN = os.path.dirname(sys.executable)


def openssl(*args: str, cwd) -> None:
    """Run the ``openssl`` command in ``cwd``; fail the test on error."""
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def self_signed_cert(directory, name: str, cn: str, ip: str | None = None):
    """``name``.pem and ``name``.key in ``directory``: a self-signed certificate
    for ``cn`` (and ``ip`` as subjectAltName); returns (cert path, key path)."""
    san = ["-addext", f"subjectAltName=IP:{ip}"] if ip else []
    openssl(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
        *("-subj", f"/CN={cn}", *san),
        *("-keyout", f"{name}.key", "-out", f"{name}.pem"),
        cwd=directory,
    )
    return directory / f"{name}.pem", directory / f"{name}.key"


def run_in_session(args: list[str], timeout: float, grace: float = 30, **kwargs):
    """Run ``args`` to completion in a session of its own: (exit status, output).

    Past ``timeout`` it gets SIGTERM and ``grace`` seconds to clean up; whatever
    is left of its process group is then killed.
    """
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kwargs,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=grace)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return proc.returncode, output
