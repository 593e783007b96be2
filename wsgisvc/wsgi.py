"""The WSGI server (the HTTP/1.1 core of ``wsgisvc.http`` on a resizable pool)
and the paste Loader.

Lifecycle, and why it is shaped this way:

- The listening socket is bound in the constructor, before any fork, so the
  workers a ProcessLauncher forks all accept on the same socket.
- ``start()`` starts the connection scheduler the backend names
  (``wsgisvc.backend.NAME``). It accepts up to ``wsgi_max_connections``
  connections; a connection takes one of ``wsgi_default_pool_size`` slots only
  while a request is served, so idle keep-alive connections and clients still
  sending their head cannot lock out the others.
- ``stop()`` closes the listener in this process (not in a SIGHUP reload of
  the process that bound it: connections wait in its backlog until the
  restart) and closes idle connections (after ``idle_close_grace``); a
  connection accepted before the stop is served, a request in flight is never
  cut, and each connection closes once its response is sent (one whose
  response began before the stop, kept alive, once the grace passed without a
  next request). ``wait()`` returns when the last connection is done, and
  leaves the pool at size 0.
- ``reset()`` (SIGHUP) re-reads ``wsgi_default_pool_size`` and resizes the pool,
  and binds the listener again if ``stop()`` had closed it, in the process that
  bound it only: a forked worker never binds its parent's socket.
"""

import importlib
import importlib.util
import logging
import os
import socket
from collections.abc import Callable

from oslo_config import cfg
from paste import deploy

from wsgisvc import backend, launcher, metrics, opts, report, sslutils, watchdog
from wsgisvc.errors import (  # noqa: F401  (re-exported: wsgi.StartupError ...)
    AppLoadError,
    BindError,
    PasteAppNotFound,
    PasteConfigNotFound,
    PasteLoadError,
    StartupError,
)
from wsgisvc.http import accesslog, listeners
from wsgisvc.http.core import Core
from wsgisvc.http.limits import Limits

LOG = logging.getLogger(__name__)


class Loader:
    """Loads WSGI applications from the PasteDeploy file ``api_paste_config``.

    A relative name is looked up with ``conf.find_file()``: next to the
    configuration files and in the ``--config-dir`` directories, then in the
    usual project directories.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        opts.register(conf, opts.wsgi_opts)
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


class ModuleLoader:
    """Loads the WSGI application ``module:callable``, as uWSGI's ``--module``
    and gunicorn's ``APP_MODULE`` do: every OpenStack API ships one
    (``placement.wsgi.api:application``).

    The constructor only finds the module, without running it: OpenStack app
    modules build the app when imported (database engines, threads), which
    must happen in the process that serves it. ``load_app()`` imports it.
    """

    def __init__(self, target: str) -> None:
        module, _, attribute = target.partition(":")
        if not module or not attribute.isidentifier():
            raise AppLoadError(f"app {target!r}: give it as module:callable")
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError) as exc:  # a parent package failed
            raise AppLoadError(
                f"cannot find module {module!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if found is None:
            raise AppLoadError(f"no module named {module!r}")
        self.target, self.module, self.attribute = target, module, attribute

    def load_app(self, name: str | None = None):
        """Import the module and return its callable (``name`` is unused: the
        target says which app)."""
        try:
            app = getattr(importlib.import_module(self.module), self.attribute)
        except AttributeError as exc:
            raise AppLoadError(
                f"module {self.module!r} has no {self.attribute!r}"
            ) from exc
        except (Exception, SystemExit) as exc:  # the module failed building it
            raise AppLoadError(
                f"cannot load {self.target!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if not callable(app):
            raise AppLoadError(f"{self.target!r} is not callable: {app!r}")
        return app


class Server:
    """A WSGI server for ``app`` on one listening socket.

    ``on_failure`` (see :class:`wsgisvc.launcher.ServiceBase`) is called when
    the listener fails in a way no retry mends; a launcher sets it.
    """

    on_failure: Callable[[str], None] | None = None
    # the service's (WSGIService.start sets it): slow requests, the loop's beat
    watchdog_settings = watchdog.OFF

    bind_retry_seconds = 5.0
    # After stop(), a connection not sending a request this long is closed.
    idle_close_grace = 0.5

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
        inherited_socket=None,
    ) -> None:
        """``inherited_socket``: a listening socket passed by systemd or an
        upgrade (``systemd.activated_socket()``), served instead of binding
        ``host``/``port``/``socket_file``."""
        opts.register(conf, opts.wsgi_opts)
        self.conf = conf
        self.name = name
        self.app = app
        self._explicit_pool_size = pool_size
        self.pool_size = pool_size or conf.wsgi_default_pool_size
        self._scheduling = _scheduling()
        self.pool = self._scheduling.make_slots(self.pool_size)
        self._backlog = backlog
        self._max_url_len = max_url_len
        self._ssl_context = sslutils.make_context(conf) if use_ssl else None
        self._socket_file = socket_file
        self._socket_mode = socket_mode
        self._requested = (host or "0.0.0.0", port or 0)
        # kept open for the life of the process: stop() closes a copy, so a
        # reset() serves the same socket again
        self._inherited = inherited_socket
        self._scheduler = None
        self._core: Core | None = None
        self.stopping = False
        self._socket = self._bind()
        self._bound_in = os.getpid()
        passed = " (socket passed in LISTEN_FDS)" if inherited_socket else ""
        LOG.info("%s listening on %s%s", name, self.url, passed)

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

    @property
    def socket(self):
        """The listening socket (None while stopped): what an upgrade hands on."""
        return self._socket

    def _bind(self):
        if self._inherited is not None:
            return self._serve_inherited()
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

    def _serve_inherited(self):
        sock = self._inherited.dup()
        if sock.family == socket.AF_UNIX:
            self._socket_file = sock.getsockname() or "(unnamed)"
            self.host, self.port = self._socket_file, None
        else:
            self.host, self.port = sock.getsockname()[:2]
        return sock

    # --- ServiceBase -----------------------------------------------------------

    def start(self) -> None:
        """Start accepting; return at once (the work runs in the scheduler)."""
        if self._socket is None:
            if not self._binds_here():
                raise BindError(
                    f"{self.name}: stopped in a worker, which does not bind its "
                    f"parent's listening socket again"
                )
            self._socket = self._bind()
        self.stopping = False
        self.pool.resize(self.pool_size)
        self._core = self._make_core()
        tls = (self.conf, self._ssl_context) if self._ssl_context else None
        self._scheduler = self._scheduling.Scheduler(
            self._core, self.name, self.pool, self.conf.wsgi_max_connections, tls
        )
        self._scheduler.start(self._socket)
        metrics.track_pool(self.name, self.pool, lambda: self.pool.busy)
        report.add_section(f"{self.name} server", self.describe)

    def stop(self) -> None:
        """Stop accepting, close idle connections; in-flight requests finish."""
        if self.stopping:
            return
        self.stopping = True
        scheduler = self._scheduler
        if self._core is not None:
            self._core.stop(self.idle_close_grace)  # each response from now on closes
        if scheduler is not None:
            scheduler.stop_accepting()
        if not (launcher.reloading() and self._binds_here()):
            self._close_listener()  # a reload keeps it here: nothing is refused
        if scheduler is not None:
            scheduler.close_idle(self.idle_close_grace)
            LOG.info(
                "%s stopped accepting; %d connection(s) finishing",
                self.name,
                scheduler.connections,
            )

    def wait(self) -> None:
        """Block until the accept loop ended and every connection is done."""
        if self._scheduler is not None:
            self._scheduler.wait()
        if self._core is not None and self._core.slow_requests is not None:
            self._core.slow_requests.close()
        if self.stopping:
            self.pool.resize(0)
            accesslog.WRITER.flush()

    def reset(self) -> None:
        """Resize the pool to the (re-read) configured size; rebind if closed
        and this process bound it (``_binds_here``)."""
        self.pool_size = self._explicit_pool_size or self.conf.wsgi_default_pool_size
        self.pool.resize(self.pool_size)
        if self._socket is None and self._binds_here():
            self._socket = self._bind()

    def _binds_here(self) -> bool:
        """Whether this process may listen again once stop() closed the
        listener: the one that bound it may; a forked worker may not, since
        its parent and siblings hold the port and its bind would fail, after
        retrying for ``bind_retry_seconds``. An inherited socket is served
        again from the copy kept open, in any process."""
        return self._inherited is not None or self._bound_in == os.getpid()

    def accept_failed(self, exc: BaseException) -> None:
        """The scheduler's accept loop ended on an unexpected error."""
        why = f"{self.name} cannot accept connections: {exc!r}"
        if self.on_failure is None:
            LOG.error("%s; nothing here restarts it", why)
        else:
            self.on_failure(why)

    def describe(self) -> str:
        """The report's section: the pool and the open connections."""
        pool, scheduler = self.pool, self._scheduler
        lines = [
            f"{self.url}: pool of {pool.size}, {pool.busy} serving, {pool.free()} "
            f"free; {scheduler.connections if scheduler else 0} connection(s) open"
        ]
        if scheduler is not None:
            lines += scheduler.connection_states()
        return "\n".join(lines)

    # --- serving ---------------------------------------------------------------

    def _make_core(self) -> Core:
        conf = self.conf
        limits = Limits(
            max_line=conf.max_header_line,
            max_url=self._max_url_len or conf.max_header_line,
            header_timeout=conf.wsgi_header_timeout,
            keepalive_timeout=conf.wsgi_keepalive_timeout,
            socket_timeout=conf.client_socket_timeout or None,
            keep_alive=conf.wsgi_keep_alive,
        )
        return Core(
            self.app,
            self,
            limits,
            log_format=conf.wsgi_log_format,
            debug=conf.wsgi_server_debug,
            url_scheme=self.scheme,
            multithread=self._scheduling.Scheduler.multithread,
            heartbeat=watchdog.loop_heartbeat(),
            slow_requests=watchdog.slow_requests(self.watchdog_settings),
        )

    def _close_listener(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()


def _scheduling():
    """The scheduler module of this process's backend, imported on first use
    (under ``threading`` nothing may import eventlet)."""
    if backend.NAME == "threading":
        from wsgisvc.http import threaded

        return threaded
    from wsgisvc.http import green

    return green


__all__ = [
    "AppLoadError",
    "BindError",
    "Loader",
    "ModuleLoader",
    "PasteAppNotFound",
    "PasteConfigNotFound",
    "PasteLoadError",
    "Server",
    "StartupError",
]
