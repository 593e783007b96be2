"""The servers placement is run under, and how the harness runs one.

Each server is handed a listening socket the harness holds for the whole run,
as systemd's socket activation does (descriptor 3, ``LISTEN_FDS=1``,
``LISTEN_PID`` the server's own pid, ``LISTEN_FDNAMES`` the service's name):
gabbi needs the host and port when it builds the tests, before any server
runs, and a port held open by the harness cannot be taken by anything else
between one server and the next. wsgisvc and gunicorn both take a socket so.
A connection made while no server runs waits in the socket's backlog for the
next one.
"""

from __future__ import annotations

import argparse
import os
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

APP = "placement.wsgi.api:application"
BIN = Path(sys.executable).parent
WORKERS = 2
START_TIMEOUT = 120.0  # seconds from exec to the first 200 on GET /
STOP_TIMEOUT = 60.0  # seconds from SIGTERM to the exit of the server


class ServerError(RuntimeError):
    """A server did not answer, died, or did not stop; says what and where."""


@dataclass(frozen=True)
class Server:
    """A command that serves placement on the socket passed as descriptor 3."""

    name: str
    argv: tuple[str, ...]

    @classmethod
    def parse(cls, spec: str) -> Server:
        """``NAME`` of a built-in server, or ``NAME=COMMAND`` (shell words)."""
        name, sep, command = spec.partition("=")
        if sep:
            return cls(name, tuple(shlex.split(command)))
        if name not in BUILTIN:
            raise argparse.ArgumentTypeError(
                f"unknown server {name!r}: one of {', '.join(BUILTIN)}, or NAME=COMMAND"
            )
        return BUILTIN[name]


def _wsgisvc(backend: str) -> Server:
    argv = (str(BIN / "wsgisvc-serve"), "--app", APP, "--workers", str(WORKERS))
    return Server(f"wsgisvc-{backend}", (*argv, "--backend", backend))


BUILTIN = {
    server.name: server
    for server in (
        Server(
            "gunicorn",
            (
                str(BIN / "gunicorn"),
                "--worker-class",
                "gthread",
                "--threads",
                "8",
                "--workers",
                str(WORKERS),
                APP,
            ),
        ),
        _wsgisvc("eventlet"),
        _wsgisvc("threading"),
    )
}


def add_server_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--server NAME|NAME=COMMAND``, repeatable; unset means every built-in."""
    parser.add_argument("--server", action="append", type=Server.parse, help=help)


def listening_socket() -> socket.socket:
    """A socket on 127.0.0.1, a port the kernel picks, listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def spawn(
    server: Server, sock: socket.socket, env: dict[str, str], log: Path
) -> subprocess.Popen:
    """Exec ``server`` in a session of its own with ``sock`` as descriptor 3."""
    fd = sock.fileno()
    # bash moves the socket to descriptor 3 and then becomes the server, so the
    # pid it puts in LISTEN_PID ($$) is the server's.
    move = "" if fd == 3 else f"exec 3<&{fd} {fd}<&-; "
    script = move + 'LISTEN_PID=$$ exec "$@"'
    activation = {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "placement"}
    with open(log, "ab") as out:
        return subprocess.Popen(
            ["bash", "-c", script, "bash", *server.argv],
            env={**os.environ, **env, **activation},
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until_serving(
    proc: subprocess.Popen, port: int, log: Path, timeout: float = START_TIMEOUT
) -> None:
    """Return once GET / answers 200; raise when the server exits first.

    The socket listens before the server runs, so the connection succeeds at
    once and the request waits in the backlog until a worker accepts it: the
    wait is on the answer, checking every tenth of a second that the server
    is still alive.
    """
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while b"\r\n" not in answer:
            if proc.poll() is not None:
                raise ServerError(
                    f"exited {proc.returncode} before serving: {tail(log)}"
                )
            if time.monotonic() > deadline:
                raise ServerError(f"no answer to GET / in {timeout:g}s: {tail(log)}")
            if select.select([conn], [], [], 0.1)[0]:
                chunk = conn.recv(4096)
                if not chunk:
                    raise ServerError(f"closed the connection of GET /: {tail(log)}")
                answer += chunk
    status = answer.split(b"\r\n", 1)[0]
    if status.split()[1:2] != [b"200"]:
        raise ServerError(f"GET / answered {status!r}: {tail(log)}")


def stop(proc: subprocess.Popen, log: Path) -> None:
    """SIGTERM the server, wait for it to exit 0, leaving no process behind.

    A worker left running would still hold the listening socket and take the
    next file's requests, so one is an error, not something to wait out.
    """
    proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise ServerError(
            f"still running {STOP_TIMEOUT:g}s after SIGTERM: {tail(log)}"
        ) from None
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    else:
        raise ServerError(f"left processes behind after exiting: {tail(log)}")
    if status != 0:
        raise ServerError(f"exited {status} on SIGTERM: {tail(log)}")


@contextmanager
def serving(
    server: Server, sock: socket.socket, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen]:
    """``server`` running and answering on ``sock``; stopped on exit."""
    proc = spawn(server, sock, env, log)
    try:
        wait_until_serving(proc, sock.getsockname()[1], log)
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    try:
        yield proc
    finally:
        stop(proc, log)


def tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"{log}:\n" + "\n".join(text)
