"""Every oslo.config option wsgisvc defines, grouped by the module that reads it.

This module imports nothing of ours but ``errors``, so any module (and
``oslo-config-generator``) can import it without side effects. The
``list_*_opts`` functions are the ``oslo.config.opts`` entry points named in
``setup.cfg``; :func:`register` puts what a component reads on whichever
``ConfigOpts`` it is handed.

Sharing a ConfigOpts with the service's own options. wsgisvc's option names are
the ones OpenStack services already use (``host``, ``report_interval``,
``<name>_listen``, oslo.service's ``wsgi_default_pool_size`` and ``[ssl]``...),
so a service's CONF may hold a definition of the same name, with its own help
text, registered before or after wsgisvc's. oslo.config refuses a second,
different definition of a name (DuplicateOptError), so both ways are made to
work: :func:`register` uses a definition already there when its values are of
the kind wsgisvc reads; and every wsgisvc option is a :class:`Shareable` one,
which compares equal to any later definition of its name whose values are of
its kind, so the service's own registration passes. Whichever came first is the
one oslo.config keeps; both read the same value from the same file.
"""

import os
import socket

from oslo_config import cfg, types

from wsgisvc.errors import ConfigValueError

__all__ = [
    "Shareable",
    "register",
    "wsgi_service_opts",
    "register_wsgi_service_opts",
    "recycling_opts",
    "worker_rss_opt",
]


def _value_kind(opt_type: object) -> type:
    """What Python values an option of ``opt_type`` yields."""
    for config_type, kind in (
        (types.Boolean, bool),
        (types.Integer, int),
        (types.Float, float),
        (types.List, list),
        (types.Dict, dict),
    ):
        if isinstance(opt_type, config_type):
            return kind
    return str  # String, HostAddress, Hostname, IPAddress, URI ...


def _reads_as(kind: type, value: object) -> bool:
    """Can wsgisvc, which reads ``kind``, use ``value`` (unset: yes) as one?"""
    if value is None:
        return True
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


class Shareable(cfg.Opt):
    """An option equal to any other of its name whose values are of its kind.

    oslo.config keeps the first definition of a name and accepts a later one
    only when it compares equal; this is what lets a service register its own
    ``host`` (say) after wsgisvc did. An int is of a float's kind.
    """

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, cfg.Opt):
            return NotImplemented
        ours, theirs = _value_kind(self.type), _value_kind(other.type)
        return (
            other.name == self.name
            and other.multi == self.multi
            and (theirs is ours or (ours is float and theirs is int))
        )

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = cfg.Opt.__hash__


class StrOpt(Shareable, cfg.StrOpt):
    pass


class BoolOpt(Shareable, cfg.BoolOpt):
    pass


class IntOpt(Shareable, cfg.IntOpt):
    pass


class FloatOpt(Shareable, cfg.FloatOpt):
    pass


class PortOpt(Shareable, cfg.PortOpt):
    pass


class HostAddressOpt(Shareable, cfg.HostAddressOpt):
    pass


class TypedOpt(Shareable, cfg.Opt):
    pass


def register(
    conf: cfg.ConfigOpts, options: list[cfg.Opt], group: str | None = None
) -> None:
    """Register ``options`` on ``conf``, sharing a name already defined there.

    A definition already on ``conf`` (a service's own ``host``, oslo.service's
    ``wsgi_default_pool_size``) is kept and read, if its value is of the kind
    wsgisvc reads; otherwise this is a ConfigValueError naming the option.
    ``group`` is a name: oslo.config keeps overrides in OptGroup objects, so
    sharing ours would leak them between ConfigOpts instances.
    """
    for opt in options:
        try:
            conf.register_opt(opt, group=group)
        except cfg.DuplicateOptError:
            try:
                value = conf[group][opt.dest] if group else conf[opt.dest]
            except cfg.ConfigSourceValueError:
                continue  # a bad value in a file: config.check_values names it
            kind = _value_kind(opt.type)
            if not _reads_as(kind, value):
                where = f"[{group}] {opt.name}" if group else opt.name
                raise ConfigValueError(
                    f"option {where} is defined elsewhere with values like "
                    f"{value!r}; wsgisvc reads it as {kind.__name__}"
                ) from None


class WritableFilePath(types.String):
    """A file path whose directory exists and is writable: a bad one is
    refused when the options are checked, before anything binds or forks."""

    def __call__(self, value):
        path = super().__call__(value)
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ValueError(f"no directory {directory}")
        if not os.access(directory, os.W_OK):
            raise ValueError(f"directory {directory} is not writable")
        if os.path.isdir(path):
            raise ValueError(f"{path} is a directory")
        return path


# --- launchers and services (namespace wsgisvc.service) -----------------------

launcher_opts = [
    IntOpt(
        "graceful_shutdown_timeout",
        default=60,
        min=0,
        help="Seconds a SIGTERM (or a SIGHUP restart) waits for in-flight work to "
        "finish before the remaining workers are killed. 0 waits forever. "
        "With graceful_drain_delay, this timeout starts once the delay ends.",
    ),
    IntOpt(
        "graceful_drain_delay",
        default=0,
        min=0,
        help="Seconds a SIGTERM leaves the process serving as before, while "
        "the healthcheck (oslo.middleware's, with the wsgisvc_draining backend) "
        "answers 503, so that a load balancer takes it out of rotation before "
        "its listening socket closes; then the graceful stop begins. SIGINT "
        "stops at once; a second SIGTERM does not extend the delay. 0: stop "
        "at once.",
    ),
    StrOpt(
        "restart_method",
        default="reload",
        choices=[
            (
                "reload",
                "SIGHUP reloads the files and replaces the workers, "
                "gracefully: every option applies",
            ),
            (
                "mutate",
                "SIGHUP applies the mutable options in place: the "
                "workers and their in-memory state stay",
            ),
        ],
        help="What SIGHUP does. Read at start: a change needs a restart. A "
        "binary may fix it in code (binary.run(restart_method=...)), which wins.",
    ),
    BoolOpt(
        "log_options",
        default=True,
        help="Log the value of every option at DEBUG level when a launcher starts.",
    ),
    TypedOpt(
        "pid_file",
        type=WritableFilePath(),
        default=None,
        help="File the pid of the service's top process is written to once it "
        "serves, and removed from at its exit. After an upgrade (SIGUSR1) it "
        "names the new parent, from when that one serves. Unset: none.",
    ),
]


def state_home(project: str) -> str:
    """``state_path``'s default for ``project``: ``~/.local/state/<project>``."""
    return os.path.join(os.path.expanduser("~"), ".local", "state", project)


service_opts = [
    HostAddressOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<current_hostname>",
        help="Name of this host: the RPC server name (topic.host) and the host "
        "column of the services table.",
    ),
    StrOpt(
        "state_path",
        # A binary's default is its project's (config.parse_args); this one
        # serves code that parses a CONF of its own.
        default=state_home("wsgisvc"),
        sample_default="~/.local/state/<project>",
        help="Directory for the service's state, such as the default SQLite "
        "database of the services table. It must be writable. The default is "
        "the binary's project's: its name up to the first '-' (wsgisvc-api and "
        "wsgisvc-worker: ~/.local/state/wsgisvc; myproj-api and myproj-worker: "
        "~/.local/state/myproj), so the binaries of one project share a "
        "services table, and another project's are not in it.",
    ),
    IntOpt(
        "report_interval",
        default=10,
        min=1,
        help="Seconds between heartbeats a service writes to the services table.",
    ),
    IntOpt(
        "service_down_time",
        default=60,
        min=1,
        help="A service whose last heartbeat is older than this many seconds is "
        "reported down.",
    ),
    BoolOpt(
        "periodic_enable",
        default=True,
        help="Run the manager's periodic tasks.",
    ),
    IntOpt(
        "periodic_interval",
        default=60,
        min=1,
        help="Default seconds between runs of periodic tasks without a spacing.",
    ),
    IntOpt(
        "periodic_fuzzy_delay",
        default=60,
        min=0,
        help="Upper bound of the random delay before the first periodic task run, "
        "so that services started together do not hit the database at once.",
    ),
    IntOpt(
        "periodic_interval_max",
        default=300,
        min=1,
        help="Longest idle time between two rounds of periodic tasks.",
    ),
]


def worker_rss_opt(name: str) -> cfg.Opt:
    """``<name>_max_worker_rss_mib``: recycling by memory, for any service."""
    return IntOpt(
        f"{name}_max_worker_rss_mib",
        default=0,
        min=0,
        help=f"Replace a worker process of {name} whose resident memory exceeds "
        "this many MiB (the parent checks about once a second), gracefully: its "
        "replacement serves first, then it finishes its in-flight work and "
        "exits. 0 never checks.",
    )


def recycling_opts(name: str) -> list[cfg.Opt]:
    """The worker recycling options of an API called ``name``."""
    return [
        IntOpt(
            f"{name}_max_requests",
            default=0,
            min=0,
            help=f"Replace each worker process of the {name} API after it has "
            f"served this many requests (plus {name}_max_requests_jitter), "
            "gracefully: its replacement serves first, then it finishes its "
            "in-flight requests and exits. 0 never replaces a worker for its "
            "count.",
        ),
        IntOpt(
            f"{name}_max_requests_jitter",
            default=0,
            min=0,
            help=f"Each worker of the {name} API adds a random number from 0 to "
            f"this to {name}_max_requests, so that workers started together are "
            "not replaced together.",
        ),
        worker_rss_opt(name),
    ]


def watchdog_opts(name: str) -> list[cfg.Opt]:
    """The watchdog options of an API called ``name`` (``wsgisvc.watchdog``)."""
    return [
        FloatOpt(
            f"{name}_worker_timeout",
            default=0,
            min=0,
            help=f"Seconds a worker process of the {name} API may go without its "
            "loop turning (an eventlet hub blocked by a call that never yields, a "
            "selector thread that cannot run) before its parent writes every "
            "thread's and greenthread's stack to the log, kills it and starts "
            "another; every request in flight on it is cut. Set it above the "
            "longest call your API makes without yielding. 0 never kills (the "
            "default); with 1 worker (a single process) it does nothing.",
        ),
        FloatOpt(
            f"{name}_slow_request_seconds",
            default=0,
            min=0,
            help=f"A request to the {name} API that runs longer than this many "
            "seconds has its stack logged once, with its method and target; "
            "nothing is stopped. 0 never logs.",
        ),
    ]


def wsgi_service_opts(name: str) -> list[cfg.Opt]:
    """The per-API options of a WSGIService called ``name``."""
    return [
        HostAddressOpt(
            f"{name}_listen",
            default="0.0.0.0",
            help=f"Address the {name} API listens on.",
        ),
        PortOpt(
            f"{name}_listen_port",
            default=0,
            help=f"Port the {name} API listens on; 0 lets the kernel choose a free "
            "port, which is logged at start.",
        ),
        IntOpt(
            f"{name}_workers",
            sample_default="<number of CPUs>",
            help=f"Number of worker processes for the {name} API "
            "(default: CPU count); must be at least 1.",
        ),
        StrOpt(
            f"{name}_socket_file",
            help=f"A unix socket the {name} API serves on instead of "
            f"{name}_listen:{name}_listen_port (a web server in front of it "
            "connects there). A socket file left by a server that died is "
            "replaced; one in use is a start-up error.",
        ),
        StrOpt(
            f"{name}_socket_mode",
            regex=r"^0?[0-7]{3}$",
            help=f"Permissions of {name}_socket_file, in octal (0660: its "
            "owner and group may connect). Unset: as the umask leaves them.",
        ),
        BoolOpt(
            f"{name}_use_ssl",
            default=False,
            help=f"Serve the {name} API over TLS (see the [ssl] section).",
        ),
        BoolOpt(
            f"{name}_in_services_table",
            default=True,
            help=f"Keep a row for the {name} API in the services table, "
            "heartbeated like an RPC service's; off keeps it out of the table "
            "(and needs no database).",
        ),
        StrOpt(
            f"{name}_service_binary",
            default=f"wsgisvc-{name}",
            help=f"Binary column of the {name} API's row in the services table.",
        ),
        *recycling_opts(name),
        *watchdog_opts(name),
    ]


def register_wsgi_service_opts(conf: cfg.ConfigOpts, name: str) -> None:
    """Register ``<name>_listen`` and its siblings for an API called ``name``."""
    register(conf, wsgi_service_opts(name))


# --- the sample binaries (namespace wsgisvc.sample) ----------------------------

# The options of wsgisvc-api's ``osapi`` and wsgisvc-worker's ``worker``: a
# namespace of their own, so that a service's generator configuration, which
# lists wsgisvc.service and its siblings, shows none of the sample's options.
sample_worker_opts = [
    IntOpt(
        "worker_workers",
        min=1,
        sample_default="<number of CPUs>",
        help="Number of worker processes for wsgisvc-worker (default: CPU count).",
    ),
    StrOpt(
        "worker_manager",
        default="wsgisvc.sample.manager.WorkerManager",
        help="Manager class the wsgisvc-worker binary runs.",
    ),
]


def sample_opts() -> list[cfg.Opt]:
    """Every option of the sample binaries: the worker's and the API's."""
    return sample_worker_opts + [worker_rss_opt("worker")] + wsgi_service_opts("osapi")


# --- the WSGI server (namespace wsgisvc.wsgi) ---------------------------------

wsgi_opts = [
    StrOpt(
        "api_paste_config",
        default="api-paste.ini",
        help="File name of the PasteDeploy configuration; a relative name is "
        "looked up next to the configuration files.",
    ),
    IntOpt(
        "wsgi_default_pool_size",
        default=100,
        min=1,
        help="Number of requests each worker process serves at once "
        "(greenthreads under eventlet, threads under threading).",
    ),
    IntOpt(
        "max_header_line",
        default=16384,
        min=1,
        help="Longest header line accepted, in bytes, as sent without its CRLF "
        "(431 beyond); also the longest request target unless the service sets "
        "max_url_len (414 beyond), and a trailer field's name and value.",
    ),
    BoolOpt(
        "wsgi_keep_alive",
        default=True,
        help="Keep client connections open between requests (HTTP keep-alive).",
    ),
    IntOpt(
        "client_socket_timeout",
        default=900,
        min=0,
        help="Seconds one read or write of a request body or response may "
        "block before the connection is closed; 0 waits forever.",
    ),
    FloatOpt(
        "wsgi_header_timeout",
        default=20.0,
        min=0.1,
        help="Seconds a client has to send a whole request head, counted from "
        "the connection (first request) or from its first byte (later "
        "requests on a keep-alive connection); the whole head, not per read.",
    ),
    FloatOpt(
        "wsgi_keepalive_timeout",
        default=5.0,
        min=0.1,
        help="Seconds an idle keep-alive connection may wait for its next "
        "request before it is closed.",
    ),
    IntOpt(
        "wsgi_max_connections",
        default=2000,
        min=1,
        help="Most client connections each worker process holds open at once. "
        "Connections that are idle or still sending their request head hold "
        "no pool slot; beyond this number clients wait in the listen backlog.",
    ),
    IntOpt(
        "tcp_keepidle",
        default=600,
        min=1,
        help="Seconds of idle time before TCP keep-alive probes start.",
    ),
    StrOpt(
        "wsgi_log_format",
        default='%(client_ip)s "%(request_line)s" status: %(status_code)s '
        "len: %(body_length)s time: %(wall_seconds).7f",
        help="Format of the access log line written for each request. Keys: "
        "client_ip, request_line, status_code, body_length, wall_seconds, "
        "date_time, request_id.",
    ),
    BoolOpt(
        "wsgi_server_debug",
        default=False,
        help="Send tracebacks in 500 responses. Never enable this in production.",
    ),
]

# --- TLS (namespace wsgisvc.sslutils, section [ssl]) --------------------------

ssl_group = cfg.OptGroup("ssl", title="TLS options for the WSGI server")

ssl_opts = [
    StrOpt("cert_file", help="Certificate file (PEM) the server presents."),
    StrOpt("key_file", help="Private key file (PEM) of the certificate."),
    StrOpt(
        "ca_file",
        help="CA bundle used to verify clients; when set, clients must present a "
        "certificate signed by it.",
    ),
    StrOpt(
        "version",
        help="Lowest TLS version accepted: TLSv1_2 or TLSv1_3 (default: the "
        "Python ssl module's default minimum).",
    ),
    StrOpt("ciphers", help="OpenSSL cipher list for TLS 1.2 connections."),
]

# --- periodic tasks (namespace wsgisvc.periodic_task) -------------------------

periodic_task_opts = [
    BoolOpt(
        "run_external_periodic_tasks",
        default=True,
        help="Run periodic tasks marked external_process_ok in this process; turn "
        "off when another process runs them.",
    ),
]

# --- the services table (namespace wsgisvc.registry) --------------------------

# Not [database]: that section is the service's own (oslo.db's), and the
# services table must never land in the service's database, where a table of
# that name may already be the service's (cinder's, nova's).
services_table_group = cfg.OptGroup(
    "services_table", title="The database of wsgisvc's services table"
)

services_table_opts = [
    StrOpt(
        "connection",
        secret=True,
        help="SQLAlchemy URL of the database holding wsgisvc's services table, "
        "e.g. postgresql+psycopg://user@host/db or mysql+pymysql://user@host/db. "
        "Default: a SQLite file wsgisvc.sqlite under state_path. A service's "
        "own [database] connection is never used for it.",
    ),
    IntOpt(
        "connect_timeout",
        default=5,
        min=1,
        help="Seconds to wait for a database connection before the attempt fails.",
    ),
]


# --- Prometheus metrics (namespace wsgisvc.metrics) ---------------------------

metrics_opts = [
    HostAddressOpt(
        "metrics_listen",
        default="127.0.0.1",
        help="Address the Prometheus metrics listener binds; it serves /metrics "
        "of every worker from the parent process. Metrics can tell an outsider "
        "much about the service, hence loopback by default.",
    ),
    PortOpt(
        "metrics_listen_port",
        help="Port of the Prometheus metrics listener. Unset (the default) turns "
        "metrics off: no listener, no metrics directory, no prometheus_client. "
        "0 lets the kernel choose a free port, which is logged at start.",
    ),
]


# --- oslo-config-generator entry points ---------------------------------------


def list_service_opts():
    return [(None, launcher_opts + service_opts)]


def list_wsgi_opts():
    return [(None, wsgi_opts)]


def list_ssl_opts():
    return [(ssl_group, ssl_opts)]


def list_periodic_task_opts():
    return [(None, periodic_task_opts)]


def list_registry_opts():
    return [(services_table_group, services_table_opts)]


def list_metrics_opts():
    return [(None, metrics_opts)]


def list_sample_opts():
    return [(None, sample_opts())]
