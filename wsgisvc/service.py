"""The public face: what a service binary imports.

``serve()`` / ``wait()`` run one launcher per process; ``Service`` (RPC) and
``WSGIService`` (paste app over HTTP) are the two kinds of service wsgisvc ships.
The process machinery lives in ``launcher``, ``process_launcher`` and ``signals``.
"""

from __future__ import annotations

import importlib
import math
import os
import random
import socket
import sys
from typing import TYPE_CHECKING, Any

from oslo_config import cfg
from oslo_log import log as logging

from wsgisvc import (
    backend,
    config,
    loopingcall,
    opts,
    recycling,
    registry,
    signals,
    systemd,
    watchdog,
)
from wsgisvc.errors import ServiceConfigError, StartupError
from wsgisvc.http.listeners import Address
from wsgisvc.launcher import (
    HANDLED_SIGNALS,
    Launcher,
    ServiceBase,
    ServiceLauncher,
    Services,
    check_service,
)
from wsgisvc.process_launcher import ProcessLauncher, ServerWrapper

if TYPE_CHECKING:  # imported where used: an API needs no oslo.messaging nor
    # ORM, a worker no HTTP server
    from wsgisvc import rpc, wsgi
    from wsgisvc.manager import Manager
    from wsgisvc.registry.heartbeat import Heartbeat

LOG = logging.getLogger(__name__)

__all__ = [
    "Launcher",
    "ProcessLauncher",
    "ServerWrapper",
    "ServiceBase",
    "ServiceLauncher",
    "Service",
    "ServiceConfigError",
    "Services",
    "StartupError",
    "WSGIService",
    "get_launcher",
    "launch",
    "process_launcher",
    "serve",
    "wait",
]


def _check_workers(conf: cfg.ConfigOpts, workers: object) -> None:
    if workers is None or (isinstance(workers, str) and workers in conf):
        return
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(
            f"workers must be an integer or an option's name, got {workers!r}"
        )
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")


def launch(
    conf: cfg.ConfigOpts,
    service: ServiceBase,
    workers: int | str | None = 1,
    restart_method: str | None = None,
) -> ServiceLauncher | ProcessLauncher:
    """Run ``service`` in this process (workers None or 1) or in ``workers``
    forked processes; return the launcher to ``wait()`` on.

    ``workers`` may name the option holding the number (unset: the CPU
    count): a SIGHUP reload then applies a changed number of workers.
    ``restart_method``: SIGHUP's ``"reload"`` or ``"mutate"``; by default
    the ``restart_method`` option's (read here, once).
    """
    _check_workers(conf, workers)
    restart_method = _restart_method(conf, restart_method)
    check_service(service)
    systemd.check_sockets_claimed()
    count = config.workers(conf, workers) if isinstance(workers, str) else workers
    if count is None or count == 1:
        launcher = ServiceLauncher(conf, restart_method=restart_method)
        launcher.launch_service(service, workers=workers)
        return launcher
    launcher = ProcessLauncher(conf, restart_method=restart_method)
    launcher.launch_service(service, workers=workers)
    return launcher


def _restart_method(conf: cfg.ConfigOpts, given: str | None) -> str:
    """``given``, else the ``restart_method`` option's value."""
    if given is not None:
        return given
    opts.register(conf, opts.launcher_opts)
    return conf.restart_method


def process_launcher(restart_method: str | None = None) -> ProcessLauncher:
    """A ProcessLauncher on the binary's CONF, for several services per binary
    (``restart_method``: as launch() takes it)."""
    conf = config.CONF
    return ProcessLauncher(conf, restart_method=_restart_method(conf, restart_method))


_launcher: ServiceLauncher | ProcessLauncher | None = None


def serve(
    server: ServiceBase,
    workers: int | str | None = None,
    restart_method: str | None = None,
) -> None:
    """Launch ``server`` on the binary's CONF, on ``workers`` and with
    ``restart_method`` as launch() takes them; once per process."""
    global _launcher
    if _launcher is not None:
        raise RuntimeError("serve() can only be called once per process")
    _launcher = launch(
        config.CONF, server, workers=workers, restart_method=restart_method
    )


def get_launcher() -> ServiceLauncher | ProcessLauncher:
    """The launcher serve() created in this process."""
    if _launcher is None:
        raise RuntimeError("serve() has not been called in this process")
    return _launcher


def wait() -> int:
    """Wait for the launcher serve() created; return the process's exit status.

    The process only exits after this: signals that came too late to act on
    are ignored from here on (``signals.ignore_from_now``), so the status is
    the one returned. (A program exec'd after it would inherit them ignored.)
    Raises StartupError when the first workers could not start the service.
    """
    try:
        return get_launcher().wait()
    finally:
        signals.ignore_from_now(HANDLED_SIGNALS)


# --- WSGIService: a paste app over HTTP ---------------------------------------

# Clients beyond the workers' greenpools wait in the listen backlog (see
# wsgisvc.wsgi); 128 overflows under a few hundred clients, and an overflow
# costs the client a 1 s SYN retransmit. The kernel caps it at somaxconn.
WSGI_BACKLOG = 4096


class WSGIService(ServiceBase):
    """A WSGI application served over HTTP(S) by :class:`wsgisvc.wsgi.Server`.

    Everything that can fail at start-up (paste file, app name, options, a
    configured database's schema, TLS files, the port) fails here, in the
    constructor, before any fork. The sockets are bound here too, so ``.port``
    is the real port (``<name>_listen_port = 0`` lets the kernel choose) and
    forked workers share them.

    ``loader`` gives the app (``load_app(name)``): the paste app ``name`` of
    ``api_paste_config`` by default, or a :class:`wsgisvc.wsgi.ModuleLoader`.
    ``addresses``: where to listen, by default ``<name>_listen``:
    ``<name>_listen_port``; each address is one socket, all serving the one
    app, the first named ``name`` (for socket activation and upgrades), the
    next ``name-2`` and so on. ``load_in_workers``: the app is loaded in
    ``start()``, in each worker after the fork, not here: OpenStack apps open
    database engines, transports and threads when they load, which a fork
    does not carry over.

    The API's row in the services table (binary ``<name>_service_binary``,
    unless ``<name>_in_services_table`` is off) is no business of the workers:
    the top process registers and heartbeats it once they serve (``serving()``).
    """

    def __init__(
        self,
        name: str,
        loader: wsgi.Loader | wsgi.ModuleLoader | None = None,
        use_ssl: bool = False,
        max_url_len: int | None = None,
        *,
        conf: cfg.ConfigOpts | None = None,
        addresses: list[Address] | None = None,
        load_in_workers: bool = False,
    ) -> None:
        from wsgisvc import wsgi

        self.conf = conf if conf is not None else config.CONF
        self.name = name
        opts.register(self.conf, opts.wsgi_opts + opts.service_opts)
        opts.register_wsgi_service_opts(self.conf, name)
        config.check_values(self.conf)  # this API's options too, before binding
        self.workers_option = f"{name}_workers"  # what a binary serves it on
        self.workers = config.workers(self.conf, self.workers_option)
        self.recycling = recycling.Limits.for_api(self.conf, name)
        self.watchdog = watchdog.Settings.for_api(self.conf, name)
        self.use_ssl = use_ssl or self.conf[f"{name}_use_ssl"]
        self.loader = loader or wsgi.Loader(self.conf)
        self.app = None if load_in_workers else self._load_app()
        self.keeps_row = self.conf[f"{name}_in_services_table"]
        if self.keeps_row:  # behind is refused now, before binding
            registry.check_schema(self.conf)
        # what <name>_listen* said, when the addresses came from them
        self._listen = None if addresses is not None else self._listen_options()
        if addresses is None:
            addresses = [self._listen]
        self.servers = [
            self._server(wsgi, self._socket_name(index), address, max_url_len)
            for index, address in enumerate(addresses)
        ]
        self.server = self.servers[0]
        self.host, self.port = self.server.host, self.server.port
        self.heartbeat: Heartbeat | None = None  # once the row is registered
        self._row_task: backend.Task | None = None

    def _load_app(self):
        """The app, and the values of the options it registered as it loaded
        (in its paste factory, say) checked as the binary's were at start:
        a bad one is the same one line naming it, not a traceback later
        (in the worker, or in the launcher's option log)."""
        try:
            app = self.loader.load_app(self.name)
        except StartupError:
            config.check_values(self.conf)  # the bad value it failed on, named
            raise
        config.check_values(self.conf)
        config.share_files_with_global(self.conf)
        return app

    def _socket_name(self, index: int) -> str:
        return self.name if index == 0 else f"{self.name}-{index + 1}"

    def _server(
        self, wsgi, name: str, address: Address, max_url_len: int | None
    ) -> wsgi.Server:
        return wsgi.Server(
            self.conf,
            name,
            self.app,
            host=address.host,
            port=address.port,
            socket_file=address.path,
            socket_mode=self.conf[f"{self.name}_socket_mode"],
            use_ssl=self.use_ssl,
            max_url_len=max_url_len,
            backlog=WSGI_BACKLOG,
            inherited_socket=systemd.activated_socket(name),  # None: bind
        )

    def __repr__(self) -> str:
        return f"<WSGIService {self.name} {self.server.url}>"

    def start(self) -> None:
        if self.app is None:
            self.app = self._load_app()
        # counted here, in the worker: each draws its own jitter
        app = recycling.count_requests(self.app, self.recycling)
        for server in self.servers:
            server.on_failure = self.on_failure
            server.app = app
            server.watchdog_settings = self.watchdog
            server.start()

    def serving(self) -> None:
        """Keep the row, on a task of its own: answering waits for none of it.

        The row says this API runs on this host, so it lives as long as the
        top process does, through reloads and the last drain.
        """
        if self.keeps_row and self._row_task is None:
            self._row_task = backend.spawn(self._keep_row)

    def _keep_row(self) -> None:
        # The ORM and alembic load here, in the top process, after the workers
        # forked: they never carry them.
        from wsgisvc.registry import heartbeat, migration

        try:
            migration.sync_default(self.conf)
            self.heartbeat = heartbeat.Heartbeat(
                self.conf, self.conf.host, self.conf[f"{self.name}_service_binary"]
            )
            self.heartbeat.start()  # registers now: up from this moment
        except StartupError as error:
            LOG.error("%s keeps no row in the services table: %s", self, error)
        except Exception:
            LOG.exception("%s keeps no row in the services table", self)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def wait(self) -> None:
        for server in self.servers:
            server.wait()

    def _listen_options(self) -> Address:
        """``<name>_socket_file`` if set, else ``<name>_listen``:
        ``<name>_listen_port``: one or the other, never both, so a unix
        socket never opens a TCP port nobody asked for."""
        path = self.conf[f"{self.name}_socket_file"]
        if path:
            return Address(path=path)
        return Address(
            self.conf[f"{self.name}_listen"], self.conf[f"{self.name}_listen_port"]
        )

    def reset(self) -> None:
        """SIGHUP: the recycling limits and each server's options again.

        The listening sockets stay: bound once, before the fork, shared by
        every worker and handed over by name in an upgrade (or systemd's),
        they are not rebound on a reload, and a changed address says so.
        """
        self.recycling = recycling.Limits.for_api(self.conf, self.name)
        self.watchdog = watchdog.Settings.for_api(self.conf, self.name)
        for server in self.servers:
            server.reset()
        listen = self._listen_options() if self._listen is not None else None
        if listen is not None and listen != self._listen:
            LOG.warning(
                "reload: %s a restart: %s still listens on %s",
                self._needs(listen),
                self.name,
                self.server.url,
            )

    def _needs(self, listen: Address) -> str:
        if listen.path:
            return f"{self.name}_socket_file = {listen.path} needs"
        return (
            f"{self.name}_listen = {listen.host}, "
            f"{self.name}_listen_port = {listen.port} need"
        )

    def listening_sockets(self) -> dict[str, socket.socket]:
        """The listening sockets, under the names a new binary's service
        takes them by (what an upgrade hands over)."""
        return {
            server.name: server.socket
            for server in self.servers
            if server.socket is not None
        }


# --- Service: a manager behind RPC, with periodic tasks and a heartbeat -------


def _import_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ServiceConfigError(f"cannot import manager {path!r}: {error}") from error


class Service(ServiceBase):
    """A manager behind an RPC server on ``topic``, its periodic tasks, and a
    heartbeat of its row in the services table.

    Build it in the parent (checks fail there, once, before any fork); it
    connects to the broker and the database in ``start()``, in each worker.
    Every argument after ``manager`` is keyword-only: nova and cinder put
    different intervals in the same positions, and code ported from either
    must not bind silently to the wrong one.
    """

    def __init__(
        self,
        host: str,
        binary: str,
        topic: str,
        manager: str | type[Manager],
        *,
        report_interval: float | None = None,
        periodic_enable: bool | None = None,
        periodic_interval: float | None = None,
        periodic_fuzzy_delay: float | None = None,
        periodic_interval_max: float | None = None,
        service_name: str | None = None,
        cluster: str | None = None,
        conf: cfg.ConfigOpts | None = None,
    ):
        from wsgisvc import rpc

        self.conf = conf if conf is not None else config.CONF
        opts.register(self.conf, opts.launcher_opts + opts.service_opts)
        opts.register(self.conf, [opts.worker_rss_opt(topic)])
        rpc.register_opts(self.conf)
        config.check_values(self.conf)  # RPC options too, before any fork
        self.host, self.binary, self.topic = host, binary, topic
        self.recycling = recycling.Limits.for_rpc(self.conf, topic)
        self.service_name, self.cluster = service_name, cluster
        self._explicit = {
            "report_interval": report_interval,
            "periodic_enable": periodic_enable,
            "periodic_interval": periodic_interval,
            "periodic_fuzzy_delay": periodic_fuzzy_delay,
            "periodic_interval_max": periodic_interval_max,
        }
        self._read_intervals()
        self.basic_config_check()
        manager_class = _import_class(manager) if isinstance(manager, str) else manager
        self.manager = manager_class(
            host, service_name=service_name, cluster=cluster, conf=self.conf
        )
        config.check_values(self.conf)  # what the manager registered too
        self.manager.default_spacing = self.periodic_interval
        self.heartbeat = registry.Heartbeat(
            self.conf,
            host,
            binary,
            topic,
            cluster,
            report_interval=self.report_interval,
        )
        self.rpcserver: rpc.RPCServer | None = None
        self._periodic: loopingcall.DynamicLoopingCall | None = None
        self._cleaned_up = True

    def __repr__(self) -> str:
        return f"<Service {self.binary} topic={self.topic} host={self.host}>"

    @classmethod
    def create(
        cls,
        host: str | None = None,
        binary: str | None = None,
        topic: str | None = None,
        manager: str | type[Manager] | None = None,
        *,
        report_interval: float | None = None,
        periodic_enable: bool | None = None,
        periodic_interval: float | None = None,
        periodic_fuzzy_delay: float | None = None,
        periodic_interval_max: float | None = None,
        service_name: str | None = None,
        cluster: str | None = None,
        conf: cfg.ConfigOpts | None = None,
    ) -> Service:
        """A Service with the binary's defaults: host from ``host``, binary
        from argv[0], topic = binary less ``wsgisvc-``, manager from
        ``<topic>_manager``, intervals from their options."""
        conf = conf if conf is not None else config.CONF
        opts.register(conf, opts.service_opts)
        binary = binary or os.path.basename(sys.argv[0])
        topic = topic or binary.removeprefix("wsgisvc-")
        if manager is None:
            try:
                manager = conf[f"{topic}_manager"]
            except cfg.NoSuchOptError as error:
                raise ServiceConfigError(
                    f"no manager given for topic {topic!r} and no option "
                    f"{topic}_manager to take it from"
                ) from error
        return cls(
            host or conf.host,
            binary,
            topic,
            manager,
            report_interval=report_interval,
            periodic_enable=periodic_enable,
            periodic_interval=periodic_interval,
            periodic_fuzzy_delay=periodic_fuzzy_delay,
            periodic_interval_max=periodic_interval_max,
            service_name=service_name,
            cluster=cluster,
            conf=conf,
        )

    def _read_intervals(self) -> None:
        """Explicit arguments win; the rest come from the options (again on
        reset(), so a SIGHUP picks up changed values)."""
        for name, value in self._explicit.items():
            setattr(self, name, value if value is not None else self.conf[name])

    def basic_config_check(self) -> None:
        """Refuse a state dir we cannot write; fix a too-short down time."""
        state_path = os.path.expanduser(self.conf.state_path)
        try:
            os.makedirs(state_path, exist_ok=True)
        except OSError as error:
            raise ServiceConfigError(
                f"state_path {state_path} cannot be created: {error.strerror}"
            ) from error
        if not os.access(state_path, os.W_OK | os.X_OK):
            raise ServiceConfigError(f"state_path {state_path} is not writable")
        least = math.ceil(2.5 * self.report_interval)
        if self.conf.service_down_time < least:
            LOG.warning(
                "service_down_time %s s is less than 2.5 x report_interval (%s s); "
                "using %s s so a live service is never reported down",
                self.conf.service_down_time,
                self.report_interval,
                least,
            )
            self.conf.set_override("service_down_time", least)

    def start(self) -> None:
        """Row, hooks, RPC, hook, timers: in that order (doc/source/rpc.rst)."""
        self._cleaned_up = False
        self.heartbeat.register()
        self.manager.init_host()
        self.manager.pre_start_hook()
        self._start_rpc_server()
        self.manager.post_start_hook()
        self._start_timers()

    def _start_rpc_server(self) -> None:
        from wsgisvc import rpc

        self.rpcserver = rpc.RPCServer(
            self.conf,
            self.topic,
            self.host,
            [self.manager],
            watch_interval=self.report_interval,
        )
        self.rpcserver.start()

    def _start_timers(self) -> None:
        self.heartbeat.start()
        if not self.periodic_enable:
            return
        fuzz = self.periodic_fuzzy_delay
        self._periodic = loopingcall.DynamicLoopingCall(self.periodic_tasks)
        self._periodic.start(
            initial_delay=random.uniform(0, fuzz) if fuzz else None,
            periodic_interval_max=self.periodic_interval_max,
            stop_on_exception=False,
        )

    def stop(self) -> None:
        """Stop consuming RPC and stop the timers; calls in progress go on."""
        if self.rpcserver is not None:
            self.rpcserver.stop()
        if self._periodic is not None:
            self._periodic.stop()
        self.heartbeat.stop()

    def wait(self) -> None:
        """Wait for in-flight calls and a running periodic task, then clean up."""
        if self.rpcserver is not None:
            self.rpcserver.wait()
            self.rpcserver = None
        if self._periodic is not None:
            self._periodic.wait()
            self._periodic = None
        if not self._cleaned_up:
            self._cleaned_up = True
            self.manager.cleanup_host()

    def reset(self) -> None:
        """SIGHUP: re-read the intervals and let the manager reset."""
        self._read_intervals()
        self.recycling = recycling.Limits.for_rpc(self.conf, self.topic)
        self.manager.default_spacing = self.periodic_interval
        self.heartbeat.report_interval = self.report_interval
        self.manager.reset()

    def kill(self) -> None:
        """Stop and soft-delete this service's row."""
        self.stop()
        self.wait()
        self.heartbeat.kill()

    def periodic_tasks(self, raise_on_error: bool = False) -> float:
        return self.manager.periodic_tasks({}, raise_on_error=raise_on_error)

    def report_state(self) -> None:
        self.heartbeat.report_state()

    @property
    def service_id(self) -> Any:
        return self.heartbeat.service_id
