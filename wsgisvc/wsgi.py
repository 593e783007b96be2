"""The WSGI server (eventlet.wsgi on a resizable GreenPool) and the paste Loader.

Lifecycle, and why it is shaped this way:

- The listening socket is bound in the constructor, before any fork, so the
  workers a ProcessLauncher forks all accept on the same socket.
- ``start()`` spawns one accept loop. It accepts a connection only when the
  pool has a free greenthread: beyond ``pool_size`` connections, clients wait in
  the kernel's backlog, where any sibling worker with room can take them. When
  the pool is full and the backlog is not empty, a keep-alive connection that
  has had its turn (``keepalive_turn``) is closed after its current response
  (``Connection: close``), so long-lived connections cannot starve those
  waiting.
- ``stop()`` closes the listener in this process, resizes the pool to 0 and
  closes idle keep-alive connections (after ``idle_close_grace``); a request in
  flight is never cut, and its connection closes once the response is sent.
  ``wait()`` returns when the last in-flight request is done.
- ``reset()`` (SIGHUP) re-reads ``wsgi_default_pool_size`` and resizes the pool,
  and binds the listener again if ``stop()`` had closed it.
"""

import errno
import logging
import os
import time
import warnings

import eventlet
import greenlet
from eventlet import greenio, hubs
from eventlet import wsgi as eventlet_wsgi
from eventlet.green import socket as green_socket
from oslo_config import cfg
from paste import deploy

from wsgisvc import http_guard, listeners, opts, sslutils
from wsgisvc.errors import (  # noqa: F401  (re-exported: wsgi.StartupError ...)
    BindError,
    PasteAppNotFound,
    PasteConfigNotFound,
    PasteLoadError,
    StartupError,
)

LOG = logging.getLogger(__name__)
ACCESS_LOG = logging.getLogger("eventlet.wsgi.server")

_IDLE = eventlet_wsgi.STATE_IDLE

# Errors from accept() that concern one client, not the listener.
_CLIENT_ACCEPT_ERRORS = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR}
# Errors from accept() that mean the process is out of a resource for now.
_RESOURCE_ACCEPT_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class Loader:
    """Loads WSGI applications from the PasteDeploy file ``api_paste_config``.

    A relative name is looked up with ``conf.find_file()``: next to the
    configuration files and in the ``--config-dir`` directories, then in the
    usual project directories.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        conf.register_opts(opts.wsgi_opts)
        self.config_path = self._find(conf, conf.api_paste_config)

    @staticmethod
    def _find(conf: cfg.ConfigOpts, name: str) -> str:
        path = name if os.path.isabs(name) else conf.find_file(name)
        if not path or not os.path.isfile(path):
            raise PasteConfigNotFound(f"paste configuration file {name!r} not found")
        return os.path.abspath(path)

    def load_app(self, name: str):
        """Return the WSGI application ``name`` from the paste file."""
        try:
            return deploy.loadapp(f"config:{self.config_path}", name=name)
        except LookupError as exc:
            if f"No section {name!r}" in str(exc):
                raise PasteAppNotFound(
                    f"no application {name!r} in paste configuration {self.config_path}"
                ) from exc
            raise PasteLoadError(self._cannot_load(name, exc)) from exc
        except Exception as exc:  # a factory failed: still one clear line
            raise PasteLoadError(self._cannot_load(name, exc)) from exc

    def _cannot_load(self, name: str, exc: Exception) -> str:
        return (
            f"cannot load application {name!r} from {self.config_path}: "
            f"{type(exc).__name__}: {exc}"
        )


class _WsgiServer(eventlet_wsgi.Server):
    """eventlet's per-server state, plus what our protocol asks of the server."""

    def __init__(self, owner: "Server", *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner

    def should_shed_connection(self, opened_at: float) -> bool:
        """True when this connection (opened at ``opened_at``, monotonic) had
        its turn: the pool is full, it has been served for ``keepalive_turn``
        seconds, and a client waits in the backlog."""
        owner = self.owner
        if owner.stopping:
            return True
        if owner.pool.free() > 0:
            return False
        if time.monotonic() - opened_at < owner.keepalive_turn:
            return False
        return owner.backlog_pending()


class Server:
    """An eventlet WSGI server for ``app`` on one listening socket."""

    bind_retry_seconds = 5.0
    # After stop(), a connection idle this long is closed. Not at once: a
    # client that connected just before stop() may not have sent its request
    # yet; it gets served (with Connection: close) instead of a reset.
    idle_close_grace = 0.5
    # With the pool full and clients waiting, a keep-alive connection is closed
    # after this long: waiting clients get a turn, but a reconnect (accept,
    # set-up, close) is paid once per turn, not once per request.
    keepalive_turn = 0.5

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        name: str,
        app,
        host: str | None = "0.0.0.0",
        port: int | None = 0,
        pool_size: int | None = None,
        backlog: int = 128,
        use_ssl: bool = False,
        max_url_len: int | None = None,
        socket_file: str | None = None,
        socket_mode: int | str | None = None,
    ) -> None:
        conf.register_opts(opts.wsgi_opts)
        self.conf = conf
        self.name = name
        self.app = app
        self._explicit_pool_size = pool_size
        self.pool_size = pool_size or conf.wsgi_default_pool_size
        self.pool = eventlet.GreenPool(self.pool_size)
        self._backlog = backlog
        self._max_url_len = max_url_len
        self._ssl_context = sslutils.make_context(conf) if use_ssl else None
        self._socket_file = socket_file
        self._socket_mode = socket_mode
        self._requested = (host or "0.0.0.0", port or 0)
        self._connections: dict[int, list] = {}
        self._acceptor = None
        self._wsgi = None
        self.stopping = False
        self._socket = self._bind()
        LOG.info("%s listening on %s", name, self.url)

    # --- binding ---------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self._ssl_context else "http"

    @property
    def url(self) -> str:
        if self._socket_file:
            return f"{self.scheme}+unix://{self._socket_file}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def _bind(self):
        try:
            if self._socket_file:
                sock = listeners.unix_listener(
                    self._socket_file, self._socket_mode, self._backlog
                )
                self.host, self.port = self._socket_file, None
                return sock
            host, port = self._requested
            sock = listeners.tcp_listener(
                host,
                port,
                self._backlog,
                self.conf.tcp_keepidle,
                self.bind_retry_seconds,
            )
        except listeners.ListenError as exc:
            raise BindError(f"{self.name}: {exc}") from exc
        self.host, self.port = sock.getsockname()[:2]
        # a rebind (reset() after stop()) keeps the port the kernel chose
        self._requested = (host, self.port)
        return sock

    def backlog_pending(self) -> bool:
        """True when a client waits in the listener's accept queue."""
        return self._socket is not None and listeners.pending(self._socket)

    # --- ServiceBase -----------------------------------------------------------

    def start(self) -> None:
        """Start the accept loop; return at once (the work runs in greenthreads)."""
        if self._socket is None:
            self._socket = self._bind()
        self.stopping = False
        self.pool.resize(self.pool_size)
        self._wsgi = self._make_wsgi_server()
        self._acceptor = eventlet.spawn(self._accept_loop)

    def stop(self) -> None:
        """Stop accepting, close idle connections; in-flight requests finish."""
        if self.stopping:
            return
        self.stopping = True
        self.pool.resize(0)
        if self._acceptor is not None:
            self._acceptor.kill()
        self._close_listener()
        if self._wsgi is not None:
            self._wsgi.keepalive = False  # each response from now on closes
        idle = [c for c in self._connections.values() if c[2] == _IDLE]
        if idle:
            eventlet.spawn_after(self.idle_close_grace, _close_if_idle, idle)
        LOG.info(
            "%s stopped accepting; %d connection(s) finishing",
            self.name,
            len(self._connections),
        )

    def wait(self) -> None:
        """Block (green) until the accept loop ended and every request is done."""
        if self._acceptor is not None:
            try:
                self._acceptor.wait()
            except greenlet.GreenletExit:
                pass  # killed before it ran
        self.pool.waitall()

    def reset(self) -> None:
        """Resize the pool to the (re-read) configured size; rebind if closed."""
        self.pool_size = self._explicit_pool_size or self.conf.wsgi_default_pool_size
        self.pool.resize(self.pool_size)
        sem = self.pool.sem
        if sem.counter > 0 and sem._waiters:
            # resize() does not wake the accept loop waiting for a slot: a
            # balanced acquire/release does.
            sem.counter -= 1
            sem.release()
        if self._socket is None:
            self._socket = self._bind()

    # --- serving ---------------------------------------------------------------

    def _make_wsgi_server(self) -> _WsgiServer:
        conf = self.conf
        environ = {
            "wsgi.input_terminated": True,  # eventlet's input ends chunked bodies
            "wsgisvc.server": self,
            "wsgisvc.debug": conf.wsgi_server_debug,
        }
        if self._ssl_context:
            environ.update({"wsgi.url_scheme": "https", "HTTPS": "on"})
        with warnings.catch_warnings():
            # webob already writes canonical header names; eventlet warns when
            # its per-response re-capitalisation is turned off.
            warnings.simplefilter("ignore", DeprecationWarning)
            return self._new_wsgi_server(environ)

    def _new_wsgi_server(self, environ: dict) -> _WsgiServer:
        conf = self.conf
        return _WsgiServer(
            self,
            self._socket,
            self.url,
            self.app,
            log=ACCESS_LOG,
            environ=environ,
            protocol=http_guard.make_protocol(conf.max_header_line),
            keepalive=conf.wsgi_keep_alive,
            log_output=ACCESS_LOG.isEnabledFor(logging.INFO),
            log_format=conf.wsgi_log_format,
            url_length_limit=self._max_url_len or conf.max_header_line,
            debug=conf.wsgi_server_debug,
            socket_timeout=conf.client_socket_timeout or None,
            capitalize_response_headers=False,
        )

    def _accept_loop(self) -> None:
        listener, pool = self._socket, self.pool
        try:
            while not self.stopping:
                pool.sem.acquire()  # wait for a free greenthread before accepting
                pool.sem.release()
                try:
                    client, address = listener.accept()
                except OSError as exc:
                    if self.stopping or exc.errno in _CLIENT_ACCEPT_ERRORS:
                        continue
                    if exc.errno in _RESOURCE_ACCEPT_ERRORS:
                        LOG.error("%s cannot accept: %s; retrying", self.name, exc)
                        eventlet.sleep(0.1)
                        continue
                    raise
                # spawn, not spawn_n: a GreenThread can be linked, so green
                # threading.current_thread() (every log record calls it) caches
                # its answer instead of enumerating all threads each time.
                pool.spawn(self._serve_connection, client, address)
                # Let the new connection run first: a busy worker then comes
                # back to accept() later than an idle sibling, which balances
                # connections across the workers sharing this socket.
                eventlet.sleep(0)
        except greenlet.GreenletExit:
            pass  # stop() killed the loop

    def _serve_connection(self, client, address) -> None:
        """Serve ``client``, then, while clients wait, the next one in line.

        A greenthread whose connection ended takes the next waiting connection
        itself: through the accept loop the slot would wait a whole hub round
        (the loop yields after each accept), and under load the backlog would
        grow a tail of seconds.
        """
        while client is not None:
            self._serve_one(client, address)
            client, address = self._accept_waiting()

    def _accept_waiting(self):
        """A connection from the backlog, or (None, None); never blocks."""
        if self.stopping or self._socket is None or self.pool.free() < 0:
            return None, None
        try:
            client, address = self._socket.fd.accept()
        except OSError:  # EAGAIN: nobody waits (or a sibling was quicker)
            return None, None
        hubs.notify_opened(client.fileno())
        return green_socket.socket(client), address

    def _serve_one(self, client, address) -> None:
        conn_state = [address, client, eventlet_wsgi.STATE_IDLE]
        key = id(conn_state)
        self._connections[key] = conn_state
        try:
            client.settimeout(self._wsgi.socket_timeout)
            if self._ssl_context is not None:
                client = conn_state[1] = sslutils.wrap(
                    self.conf, client, self._ssl_context
                )
                client.do_handshake()
            self._wsgi.process_request(conn_state)
        except OSError as exc:  # includes ssl.SSLError and socket.timeout
            LOG.debug("%s: connection from %s ended: %s", self.name, address, exc)
        except Exception:
            LOG.exception("%s: error serving connection from %s", self.name, address)
        finally:
            del self._connections[key]
            conn_state[2] = eventlet_wsgi.STATE_CLOSE
            if client.fileno() != -1:  # eventlet's finish() usually closed it
                client.close()

    def _close_listener(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()


def _close_if_idle(connections: list[list]) -> None:
    """Close connections still waiting for a request line."""
    for conn_state in connections:
        if conn_state[2] == _IDLE:
            greenio.shutdown_safe(conn_state[1])
