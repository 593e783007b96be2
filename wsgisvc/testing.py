"""Run a service binary in a test: started on a free port, used, stopped.

::

    from wsgisvc import testing

    with testing.serve(["myapi-api", "--config-file", conf], name="myapi") as api:
        urllib.request.urlopen(api.url + "/v1/ping")
        assert api.stop() == 0

The test process binds the listening socket itself (127.0.0.1, a port the
kernel picks) and hands it to the binary as systemd's socket activation does
(descriptor 3, ``LISTEN_FDS``, ``LISTEN_PID``, ``LISTEN_FDNAMES`` = ``name``,
the service's name): no port is chosen, freed and taken again, so no other
process can take it in between, and ``url`` is known before the binary runs.
The binary says when it serves as it says it to systemd, ``READY=1`` on a
``NOTIFY_SOCKET`` this module creates (a wsgisvc launcher sends it once every
worker serves): the wait is for that, not a poll of the port or the log.

Any binary built on wsgisvc works: a console script, ``wsgisvc-serve --app
...``, ``python -m ...``; on either backend (``backend="threading"`` sets
``WSGISVC_BACKEND``). It runs in a session of its own, its output (stdout and
stderr) goes to a file, and :meth:`RunningService.stop` ends its whole process group.

For pytest, :func:`fixture` makes a fixture that starts services and stops
what is left of them when the test ends. This module imports pytest only
there: it is importable without it.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from wsgisvc.backend import BACKENDS

# Moves the passed socket to descriptor 3 and sets LISTEN_PID to its own pid,
# then becomes the binary (same pid), as systemd does between fork and exec.
_ACTIVATE = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execvp(sys.argv[2], sys.argv[2:])
"""


class NotServing(RuntimeError):
    """The binary exited, or said nothing, before it served.

    ``status`` is its exit status (None: it was killed after the timeout),
    ``output`` all it wrote: a start-up error is its last line.
    """

    def __init__(self, why: str, status: int | None, output: str) -> None:
        last = output.strip().splitlines()[-1:] or ["(no output)"]
        super().__init__(f"{why}; its last line: {last[0]}")
        self.status, self.output = status, output


class RunningService:
    """A binary started by :func:`start`, serving once it is returned.

    ``url``: ``http://127.0.0.1:PORT`` of the socket it was handed (None when
    started with ``activate=False``); ``port``; ``pid``; ``process``, its
    ``subprocess.Popen``.
    """

    def __init__(
        self,
        process: subprocess.Popen,
        output: Path,
        url: str | None,
        remove_output: bool = False,
    ) -> None:
        self.process = process
        self.pid = process.pid
        self.url = url
        self.port = int(url.rpartition(":")[2]) if url else None
        self.output_path = output
        self._remove_output = remove_output  # a temporary file: at stop()
        self._final_output: str | None = None

    def output(self) -> str:
        """What it wrote so far, stdout and stderr, in order."""
        if self._final_output is not None:
            return self._final_output
        return self.output_path.read_text(errors="replace")

    def signal(self, signo: int) -> None:
        """Send ``signo`` to the binary (its top process): SIGHUP reloads,
        SIGUSR2 writes a report..."""
        os.kill(self.pid, signo)

    def children(self) -> set[int]:
        """The pids of its child processes (a ProcessLauncher's workers)."""
        found: set[int] = set()
        with contextlib.suppress(FileNotFoundError):
            for task in os.listdir(f"/proc/{self.pid}/task"):
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    children = Path(f"/proc/{self.pid}/task/{task}/children")
                    found.update(int(pid) for pid in children.read_text().split())
        return found

    def wait_for_output(self, pattern: str, timeout: float = 30.0) -> re.Match:
        """The first match of the regular expression ``pattern`` in the
        output, once written; AssertionError after ``timeout`` seconds or if
        the binary exits first."""
        deadline = time.monotonic() + timeout
        while True:
            exited = self.process.poll() is not None  # before the last read
            if found := re.search(pattern, self.output(), re.MULTILINE):
                return found
            if exited or time.monotonic() > deadline:
                why = f"exited {self.process.returncode}" if exited else "went on"
                raise AssertionError(
                    f"{why} without writing {pattern!r} within {timeout:g} s:\n"
                    + self.output()
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> int:
        """End it by its process group: SIGTERM to every process of it (as
        systemd stops a unit), SIGKILL to whatever is left once the top
        process exited or ``timeout`` seconds passed; its exit status
        (negative: the signal that ended it)."""
        if self.process.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.pid, signal.SIGKILL)
        status = self.process.wait()
        if self._remove_output and self._final_output is None:
            self._final_output = self.output()
            self.output_path.unlink(missing_ok=True)
        return status


def _signal_group(pgid: int, signo: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signo)


def start(
    command: Sequence[str],
    *,
    name: str,
    backend: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    timeout: float = 60.0,
    activate: bool = True,
) -> RunningService:
    """Start ``command`` and return once it serves (its ``READY=1``).

    ``name``: the service's name (``WSGIService("myapi")``'s ``myapi``;
    ``wsgisvc-serve``'s ``--name``), which its socket is passed under.
    ``backend``: ``eventlet`` or ``threading``, else the environment's.
    ``env``: added to this process's environment. ``output``: the file its
    output goes to (default: a temporary one). ``activate=False`` passes no
    socket: the binary binds what its options say (``url`` is None).

    Raises :class:`NotServing` when it exits before it serves, or does not
    serve within ``timeout`` seconds (then it is killed first).
    """
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: one of {', '.join(BACKENDS)}")
    command = [_find(command[0]), *command[1:]]
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if backend is not None:
        child_env["WSGISVC_BACKEND"] = backend
    temporary = output is None
    if output is None:
        fd, output = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
        os.close(fd)
    with contextlib.ExitStack() as stack:
        notify = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
        notify.bind(f"\0wsgisvc-testing-{os.getpid()}-{id(notify)}")  # abstract
        child_env["NOTIFY_SOCKET"] = "@" + notify.getsockname()[1:].decode()
        argv, url, pass_fds = list(command), None, ()
        if activate:
            listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
            url = f"http://127.0.0.1:{listener.getsockname()[1]}"
            argv = [sys.executable, "-I", "-S", "-c", _ACTIVATE, str(listener.fileno())]
            argv += command
            pass_fds = (listener.fileno(),)
            child_env.update(LISTEN_FDS="1", LISTEN_FDNAMES=name)
        with open(output, "ab") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=cwd,
                pass_fds=pass_fds,
                start_new_session=True,
            )
        service = RunningService(process, Path(output), url, remove_output=temporary)
        _wait_ready(service, notify, timeout)
    return service  # the socket is the binary's now: ours is closed


def _find(program: str) -> str:
    """``program`` as given when it is a path; else the one beside this
    interpreter (a test run as ``.venv/bin/pytest``, the venv not activated,
    finds the venv's console scripts), else the one on ``PATH``."""
    if os.sep in program:
        return program
    beside = os.path.join(os.path.dirname(sys.executable), program)
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which(program)
    if found is None:
        raise FileNotFoundError(
            f"{program}: neither beside {sys.executable} nor on PATH"
        )
    return found


def _wait_ready(service: RunningService, notify: socket.socket, timeout: float) -> None:
    """Until ``READY=1`` comes on ``notify``: the exit of the process, read
    from a pidfd, or the deadline end the wait sooner."""
    deadline = time.monotonic() + timeout
    pidfd = os.pidfd_open(service.pid)
    try:
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([notify, pidfd], [], [], left)
            if notify in readable:
                states = notify.recv(4096).decode(errors="replace").splitlines()
                if "READY=1" in states:
                    return
            elif readable:  # the pidfd: it exited
                status = service.process.wait()
                raise NotServing(
                    f"exited with status {status} before serving",
                    status,
                    service.output(),
                )
    finally:
        os.close(pidfd)
    service.stop(timeout=0)
    raise NotServing(f"not serving after {timeout:g} s", None, service.output())


@contextlib.contextmanager
def serve(command: Sequence[str], *, name: str, **options) -> Iterator[RunningService]:
    """:func:`start` as a context manager: stopped at the end (if the test
    did not stop it), whatever happened."""
    service = start(command, name=name, **options)
    try:
        yield service
    finally:
        service.stop()


def fixture(fixture_name: str = "start_service") -> Callable:
    """A pytest fixture, named ``fixture_name``, whose value starts services
    as :func:`start` does (same arguments) and stops each at the test's end::

        # conftest.py
        from wsgisvc import testing

        start_service = testing.fixture()

        # test_api.py
        def test_ping(start_service, tmp_path):
            api = start_service(["myapi-api", "--config-file", CONF], name="myapi")
    """
    import pytest

    @pytest.fixture(name=fixture_name)
    def start_service() -> Iterator[Callable[..., RunningService]]:
        started: list[RunningService] = []

        def starter(command: Sequence[str], **options) -> RunningService:
            started.append(start(command, **options))
            return started[-1]

        yield starter
        for service in started:
            service.stop()

    return start_service


__all__ = ["NotServing", "RunningService", "fixture", "serve", "start"]
