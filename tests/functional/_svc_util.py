"""Helpers of the registry, RPC and worker tests: per-test databases, a TCP
proxy that can cut a service off from its database or broker, green waits.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid

import pytest
import sqlalchemy as sa

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
RABBIT_URL = "rabbit://guest:guest@127.0.0.1:5672/"
BACKENDS = ["sqlite", "postgresql", "mysql"]


def reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 1):
        return True
    return False


def require(host: str, port: int, what: str) -> None:
    if not reachable(host, port):
        pytest.skip(f"{what} is not reachable on {host}:{port}")


@contextlib.contextmanager
def database(backend: str, tmp_path, port: int | None = None):
    """Yield the URL of a fresh schema (PostgreSQL), database (MariaDB) or
    file (SQLite) of its own, dropped afterwards; ``port`` routes it through
    a proxy."""
    name = f"wsgisvc_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / (name + '.sqlite')}"
        return
    base = sa.engine.make_url(PG_URL if backend == "postgresql" else MYSQL_URL)
    require(base.host, base.port, backend)
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    kind = "SCHEMA" if backend == "postgresql" else "DATABASE"
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE {kind} {name}"))
    try:
        url = base.set(port=port or base.port)
        if backend == "postgresql":
            url = url.update_query_dict({"options": f"-csearch_path={name}"})
        else:
            url = url.set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(
                sa.text(
                    f"DROP {kind} {name}" + (" CASCADE" if kind == "SCHEMA" else "")
                )
            )
        admin.dispose()


def backend_port(backend: str) -> int:
    return 5432 if backend == "postgresql" else 3306


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a real server until ``cut()``: then the
    listening socket closes (new connections are refused) and every open
    connection is shut down, as when the server goes away; ``restore()``
    listens on the same port again."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.port = 0
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        if self.listener is not None:
            return
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self.port = self.listener.getsockname()[1]
        threading.Thread(
            target=self._accept, args=(self.listener,), daemon=True
        ).start()

    def cut(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets = list(self._open)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, 5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(src, dst), daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)
            src.close()
