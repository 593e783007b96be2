"""Run a real gunicorn master with wsgisvc's worker class, and talk to it.

``gunicorn_master()`` starts ``python -m gunicorn`` in its own session with
``-b 127.0.0.1:0``, reads the real port from gunicorn's ``Listening at:`` line,
and kills the whole process group when the test ends, whatever happened.
Worker PIDs come from ``/proc`` (children of the master), not from log parsing.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import gunicorn.config

from tests.helpers import alive, children, kill_group, run_in_session, wait_for

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TEST_PASTE = HERE / "_gunicorn_app.ini"
SAMPLE_PASTE = ROOT / "etc" / "api-paste.ini"
WORKER = "wsgisvc.gunicorn.Worker"
#: Generous: a worker imports the paste app (oslo.middleware and friends) on a
#: machine shared with other test runs.
BOOT_TIMEOUT = 30.0
LISTENING = re.compile(r"Listening at: https?://127\.0\.0\.1:(\d+)")


def _has_setting(name: str) -> bool:
    return any(setting.name == name for setting in gunicorn.config.KNOWN_SETTINGS)


def exited(pid: int) -> bool:
    """True once ``pid`` is gone or a zombie (a read racing its exit counts)."""
    try:
        return not alive(pid)
    except ProcessLookupError:  # exited between opening and reading /proc/PID/stat
        return True


class Master:
    """A running gunicorn master: its process, port and combined log."""

    def __init__(self, proc: subprocess.Popen, log_path: Path):
        self.proc = proc
        self.pid = proc.pid
        self.log_path = log_path
        self.port = 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> set[int]:
        """PIDs of the master's live children (its workers)."""
        for _ in range(10):
            try:
                return set(children(self.pid))
            except ProcessLookupError:
                # tests.helpers.alive() reads /proc/PID/stat; a worker that exits
                # between the open and the read makes that read fail with ESRCH.
                continue
        raise AssertionError("workers kept exiting while being listed")

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def get(self, path: str, timeout: float = 30.0):
        """One request on a fresh connection: (status, decoded JSON body or text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode(errors="replace")


def gunicorn_args(paste: Path | str = TEST_PASTE, *extra: str) -> list[str]:
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        WORKER,
        "--paste",
        str(paste),
        "--pythonpath",
        str(HERE),
        "-b",
        "127.0.0.1:0",
        "--access-logfile",
        "-",
        "--error-logfile",
        "-",
        "--log-level",
        "info",
    ]
    if _has_setting("control_socket_disable"):
        args.append("--no-control-socket")  # gunicorn >= 25: one per test, not ~/.
    return args + list(extra)


@contextlib.contextmanager
def gunicorn_master(
    tmp_path: Path,
    *extra: str,
    paste=TEST_PASTE,
    worker=WORKER,
    plain_http=True,
    env: dict | None = None,
):
    """Start a master, yield it once it listens and (plain HTTP) a worker answers.

    Connections made before a worker accepts wait in the listen backlog, so the
    readiness probe only keeps the first request of a test off boot time.
    """
    log_path = tmp_path / "gunicorn.log"
    args = gunicorn_args(paste, *extra)
    args[args.index(WORKER)] = worker
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    master = Master(proc, log_path)
    try:
        match = wait_for(
            lambda: proc.poll() is not None or LISTENING.search(master.log()),
            timeout=BOOT_TIMEOUT,
        )
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited {proc.returncode}:\n{master.log()}")
        master.port = int(match.group(1))
        if plain_http:
            wait_for(lambda: _serving(master), timeout=BOOT_TIMEOUT)
        yield master
    finally:
        kill_group(proc)


def _serving(master: Master) -> bool:
    try:
        return master.get("/", timeout=2)[0] < 500
    except OSError:
        return False


def run_gunicorn(tmp_path: Path, *extra: str, timeout: float = 30.0):
    """Run gunicorn to completion (for start-up refusals): (exit status, output)."""
    return run_in_session(gunicorn_args(TEST_PASTE, *extra), timeout, cwd=ROOT)
