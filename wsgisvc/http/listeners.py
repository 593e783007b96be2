"""Listening sockets for the WSGI server (TCP, IPv4/IPv6, and unix; bound here
or inherited from systemd), and what an error from ``accept()`` means.

Bound before any fork (see ``wsgisvc.wsgi``), so every worker accepts on the
same socket. The sockets are plain ones; a scheduler wraps them as it needs
(eventlet: a green socket). The TCP options set here are inherited by accepted
sockets on Linux, so nothing is set per connection.
"""

import dataclasses
import errno
import os
import socket
import stat
import time

# Errors from accept() that concern one client, not the listener: go on
# (EAGAIN is EWOULDBLOCK on Linux: another process took the connection).
CLIENT_ACCEPT_ERRORS = frozenset(
    {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR, errno.EAGAIN}
)
# Errors from accept() that mean the process is out of a resource for now:
# log once, back off, retry.
RESOURCE_ACCEPT_ERRORS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
)
# How long the accept loop waits after a resource error before it retries.
RESOURCE_BACKOFF = 0.5
# How long a worker with no free slot leaves a new connection to its siblings
# sharing the listener; what still waits after that, it takes: when every
# worker is busy, a connection waits in the backlog no longer than this, then
# in the worker's FIFO for a slot, instead of until a slot happens to be free.
ACCEPT_DEFER = 0.01


class ListenError(RuntimeError):
    """The address cannot be listened on; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class Address:
    """Where a server listens: ``host``:``port`` (0: a free port), or the unix
    socket ``path``."""

    host: str | None = None
    port: int = 0
    path: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Address":
        """``HOST:PORT``, ``[IPv6]:PORT`` or ``unix:PATH``, as uWSGI's and
        gunicorn's ``--bind`` take them; ValueError says what is wrong."""
        if text.startswith("unix:"):
            path = text.removeprefix("unix:")
            if not path:
                raise ValueError(f"{text!r}: no socket path after unix:")
            return cls(path=path)
        host, colon, port = text.rpartition(":")
        if not colon or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"{text!r}: give HOST:PORT, [IPv6]:PORT or unix:PATH")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            raise ValueError(f"{text!r}: put an IPv6 address in brackets")
        return cls(host=host or "0.0.0.0", port=int(port))


def tcp_listener(
    host: str, port: int, backlog: int, keepidle: int, retry_seconds: float
):
    """A listening socket on ``host``:``port`` (0: the kernel's choice).

    ``EADDRINUSE`` is retried for ``retry_seconds``: the previous owner of the
    port may still be exiting (a quick restart).
    """
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM
        )[0]
    except socket.gaierror as exc:
        raise ListenError(f"cannot resolve {host!r}: {exc}") from exc
    deadline = time.monotonic() + retry_seconds
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog)
            break
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise ListenError(
                    f"cannot listen on {host}:{port}: {exc.strerror}"
                ) from exc
            time.sleep(0.2)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepidle)
    return sock


def unix_listener(path: str, mode: int | str | None, backlog: int):
    """A listening unix socket at ``path``, chmod-ed to ``mode``.

    A socket file nobody listens on (left by a server that died) is replaced;
    one in use is an error.
    """
    if os.path.exists(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise ListenError(f"{path} exists and is not a socket")
        if _unix_socket_alive(path):
            raise ListenError(f"{path} is in use by another server")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if mode is not None:
            os.chmod(path, int(mode, 8) if isinstance(mode, str) else mode)
        sock.listen(backlog)  # after chmod: no client connects with the wrong mode
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {path}: {exc}") from exc
    return sock


def inherited_listener(fd: int):
    """The listening socket on ``fd``, inherited from systemd or an upgrade.

    It must be a TCP (IPv4, IPv6) or unix stream socket that listens: the
    server accepts on it as on one it bound itself. The family is read from
    the kernel, not guessed (a green socket class assumes AF_INET). ``fd`` is
    made close-on-exec, as a socket we bound is.
    """
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fileno=fd)
    try:
        family = probe.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN)
        kind = probe.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
        listening = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError as exc:
        probe.detach()
        raise ListenError(f"fd {fd} is not a socket: {exc.strerror}") from exc
    probe.detach()
    if family not in _STREAM_FAMILIES or kind != socket.SOCK_STREAM:
        raise ListenError(
            f"fd {fd} ({_describe_family(family)} {_describe_type(kind)}) "
            "is not a TCP or unix stream socket"
        )
    if not listening:
        raise ListenError(f"fd {fd} is a socket that does not listen")
    os.set_inheritable(fd, False)
    return socket.socket(family, kind, 0, fileno=fd)


_STREAM_FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)


def _describe_family(family: int) -> str:
    try:
        return socket.AddressFamily(family).name
    except ValueError:
        return f"family {family}"


def _describe_type(kind: int) -> str:
    try:
        return socket.SocketKind(kind).name
    except ValueError:
        return f"type {kind}"


def _unix_socket_alive(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


class AcceptErrors:
    """The accept policy every runtime follows (green, threads, the gunicorn
    worker): what an error from ``accept()`` means, and its log lines.

    A client's error (it reset before we took it, a firewall refused it) is
    no news: go on. Running out of a resource (descriptors, buffers) is logged
    once per streak, not per retry, and again when accepting works once more:
    a worker at its descriptor limit would otherwise log twice a second.
    Anything else, the listener is broken: the runtime stops accepting and
    reports it, so that the process is replaced.
    """

    def __init__(self, log, name: str) -> None:
        self._log = log  # stdlib's or gunicorn's: error() and warning()
        self._name = name
        self._failing = False

    def failed(self, exc: OSError) -> float | None:
        """How long to wait before the next ``accept()`` after ``exc`` (0: a
        client's error; ``RESOURCE_BACKOFF``: out of a resource), or None:
        the listener is broken."""
        if exc.errno in CLIENT_ACCEPT_ERRORS:
            return 0.0
        if exc.errno not in RESOURCE_ACCEPT_ERRORS:
            return None
        if not self._failing:
            self._failing = True
            self._log.error(
                "%s cannot accept: %s; retrying every %.1f s until it can",
                self._name,
                exc,
                RESOURCE_BACKOFF,
            )
        return RESOURCE_BACKOFF

    def accepted(self) -> None:
        """A connection was accepted: a resource streak, if any, is over."""
        if self._failing:
            self._failing = False
            self._log.warning("%s accepting connections again", self._name)
