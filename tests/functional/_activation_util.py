"""Start a binary the way systemd's socket activation does, without systemd.

The sockets go to fds 3, 4, ... in order, ``LISTEN_FDS`` counts them,
``LISTEN_FDNAMES`` names them, and ``LISTEN_PID`` is the binary's own pid: a
small Python wrapper moves the descriptors, sets ``LISTEN_PID`` to its own pid
and execs the binary in its place (same pid), as systemd does between its
fork and exec. A test may set the variables to what systemd would not (a
LISTEN_PID of another process, counts that disagree) to see them refused or
ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import socket

from tests.functional._wsgi_util import BINARY
from tests.helpers import PYTHON

# argv: the fds to move to 3, 4, ... (comma-separated), then the command.
# LISTEN_PID is the wrapper's own pid (so the binary's), unless OTHER_PID
# names another.
OTHER_PID = "WSGISVC_TEST_LISTEN_PID"
WRAPPER = f"""
import os, sys
fds = [int(fd) for fd in sys.argv[1].split(",") if fd]
for target, fd in enumerate(fds, start=3):
    os.dup2(fd, target)
    os.close(fd)
os.environ["LISTEN_PID"] = os.environ.pop("{OTHER_PID}", None) or str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""

# Where the test's copies go first: above every target fd, so no move
# overwrites a descriptor still to move.
FIRST_HIGH_FD = 20


@dataclasses.dataclass
class Activation:
    command: list[str]  # the binary behind the wrapper that sets LISTEN_PID
    env: dict[str, str]
    pass_fds: tuple[int, ...]


@contextlib.contextmanager
def activated(
    named: list[tuple[str, int]],
    binary: str = BINARY,
    listen_pid: int | None = None,
    **variables: str,
):
    """What to start ``binary`` with so it finds ``named`` (name, fd) passed;
    ``listen_pid`` and ``variables`` (``LISTEN_FDS="x"``) set what systemd
    would not."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, FIRST_HIGH_FD) for _, fd in named]
    moves = ",".join(map(str, high))
    env = {
        "LISTEN_FDS": str(len(named)),
        "LISTEN_FDNAMES": ":".join(name for name, _ in named),
        **variables,
    }
    if listen_pid is not None:
        env[OTHER_PID] = str(listen_pid)
    try:
        yield Activation([PYTHON, "-c", WRAPPER, moves, binary], env, tuple(high))
    finally:
        for fd in high:
            os.close(fd)


def tcp_listener() -> socket.socket:
    """What a ``ListenStream=127.0.0.1:0`` unit would hold (a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def unix_listener(path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(64)
    return sock


def unix_get(path, target: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET ``target`` over the unix socket at ``path``: (status, whole answer)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data
