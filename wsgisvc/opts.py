"""Every oslo.config option wsgisvc defines, grouped by the module that reads it.

This module imports nothing of ours, so any module (and ``oslo-config-generator``)
can import it without side effects. The ``list_*_opts`` functions are the
``oslo.config.opts`` entry points named in ``setup.cfg``; ``register_*`` helpers
let a component register what it reads on whichever ``ConfigOpts`` it is handed.
"""

import os
import socket

from oslo_config import cfg, types


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
    cfg.IntOpt(
        "graceful_shutdown_timeout",
        default=60,
        min=0,
        help="Seconds a SIGTERM (or a SIGHUP restart) waits for in-flight work to "
        "finish before the remaining workers are killed. 0 waits forever. "
        "With graceful_drain_delay, this timeout starts once the delay ends.",
    ),
    cfg.IntOpt(
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
    cfg.BoolOpt(
        "log_options",
        default=True,
        help="Log the value of every option at DEBUG level when a launcher starts.",
    ),
    cfg.Opt(
        "pid_file",
        type=WritableFilePath(),
        default=None,
        help="File the pid of the service's top process is written to once it "
        "serves, and removed from at its exit. After an upgrade (SIGUSR1) it "
        "names the new parent, from when that one serves. Unset: none.",
    ),
]

service_opts = [
    cfg.HostAddressOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<current_hostname>",
        help="Name of this host: the RPC server name (topic.host) and the host "
        "column of the services table.",
    ),
    cfg.StrOpt(
        "state_path",
        default=os.path.join(os.path.expanduser("~"), ".local", "state", "wsgisvc"),
        sample_default="~/.local/state/wsgisvc",
        help="Directory for the service's state, such as the default SQLite "
        "database. It must be writable.",
    ),
    cfg.IntOpt(
        "report_interval",
        default=10,
        min=1,
        help="Seconds between heartbeats a service writes to the services table.",
    ),
    cfg.IntOpt(
        "service_down_time",
        default=60,
        min=1,
        help="A service whose last heartbeat is older than this many seconds is "
        "reported down.",
    ),
    cfg.BoolOpt(
        "periodic_enable",
        default=True,
        help="Run the manager's periodic tasks.",
    ),
    cfg.IntOpt(
        "periodic_interval",
        default=60,
        min=1,
        help="Default seconds between runs of periodic tasks without a spacing.",
    ),
    cfg.IntOpt(
        "periodic_fuzzy_delay",
        default=60,
        min=0,
        help="Upper bound of the random delay before the first periodic task run, "
        "so that services started together do not hit the database at once.",
    ),
    cfg.IntOpt(
        "periodic_interval_max",
        default=300,
        min=1,
        help="Longest idle time between two rounds of periodic tasks.",
    ),
    cfg.IntOpt(
        "worker_workers",
        min=1,
        sample_default="<number of CPUs>",
        help="Number of worker processes for wsgisvc-worker (default: CPU count).",
    ),
    cfg.StrOpt(
        "worker_manager",
        default="wsgisvc.sample.manager.WorkerManager",
        help="Manager class the wsgisvc-worker binary runs.",
    ),
]


def worker_rss_opt(name: str) -> cfg.Opt:
    """``<name>_max_worker_rss_mib``: recycling by memory, for any service."""
    return cfg.IntOpt(
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
        cfg.IntOpt(
            f"{name}_max_requests",
            default=0,
            min=0,
            help=f"Replace each worker process of the {name} API after it has "
            f"served this many requests (plus {name}_max_requests_jitter), "
            "gracefully: its replacement serves first, then it finishes its "
            "in-flight requests and exits. 0 never replaces a worker for its "
            "count.",
        ),
        cfg.IntOpt(
            f"{name}_max_requests_jitter",
            default=0,
            min=0,
            help=f"Each worker of the {name} API adds a random number from 0 to "
            f"this to {name}_max_requests, so that workers started together are "
            "not replaced together.",
        ),
        worker_rss_opt(name),
    ]


def wsgi_service_opts(name: str) -> list[cfg.Opt]:
    """The per-API options of a WSGIService called ``name``."""
    return [
        cfg.HostAddressOpt(
            f"{name}_listen",
            default="0.0.0.0",
            help=f"Address the {name} API listens on.",
        ),
        cfg.PortOpt(
            f"{name}_listen_port",
            default=0,
            help=f"Port the {name} API listens on; 0 lets the kernel choose a free "
            "port, which is logged at start.",
        ),
        cfg.IntOpt(
            f"{name}_workers",
            sample_default="<number of CPUs>",
            help=f"Number of worker processes for the {name} API "
            "(default: CPU count); must be at least 1.",
        ),
        cfg.BoolOpt(
            f"{name}_use_ssl",
            default=False,
            help=f"Serve the {name} API over TLS (see the [ssl] section).",
        ),
        cfg.BoolOpt(
            f"{name}_in_services_table",
            default=True,
            help=f"Keep a row for the {name} API in the services table, "
            "heartbeated like an RPC service's; off keeps it out of the table "
            "(and needs no database).",
        ),
        cfg.StrOpt(
            f"{name}_service_binary",
            default=f"wsgisvc-{name}",
            help=f"Binary column of the {name} API's row in the services table.",
        ),
        *recycling_opts(name),
    ]


def register_wsgi_service_opts(conf: cfg.ConfigOpts, name: str) -> None:
    """Register ``<name>_listen`` and its siblings for an API called ``name``."""
    conf.register_opts(wsgi_service_opts(name))


# --- the WSGI server (namespace wsgisvc.wsgi) ---------------------------------

wsgi_opts = [
    cfg.StrOpt(
        "api_paste_config",
        default="api-paste.ini",
        help="File name of the PasteDeploy configuration; a relative name is "
        "looked up next to the configuration files.",
    ),
    cfg.IntOpt(
        "wsgi_default_pool_size",
        default=100,
        min=1,
        help="Number of requests each worker process serves at once "
        "(greenthreads under eventlet, threads under threading).",
    ),
    cfg.IntOpt(
        "max_header_line",
        default=16384,
        min=1,
        help="Longest header line accepted, in bytes, as sent without its CRLF "
        "(431 beyond); also the longest request target unless the service sets "
        "max_url_len (414 beyond), and a trailer field's name and value.",
    ),
    cfg.BoolOpt(
        "wsgi_keep_alive",
        default=True,
        help="Keep client connections open between requests (HTTP keep-alive).",
    ),
    cfg.IntOpt(
        "client_socket_timeout",
        default=900,
        min=0,
        help="Seconds one read or write of a request body or response may "
        "block before the connection is closed; 0 waits forever.",
    ),
    cfg.FloatOpt(
        "wsgi_header_timeout",
        default=20.0,
        min=0.1,
        help="Seconds a client has to send a whole request head, counted from "
        "the connection (first request) or from its first byte (later "
        "requests on a keep-alive connection); the whole head, not per read.",
    ),
    cfg.FloatOpt(
        "wsgi_keepalive_timeout",
        default=5.0,
        min=0.1,
        help="Seconds an idle keep-alive connection may wait for its next "
        "request before it is closed.",
    ),
    cfg.IntOpt(
        "wsgi_max_connections",
        default=2000,
        min=1,
        help="Most client connections each worker process holds open at once. "
        "Connections that are idle or still sending their request head hold "
        "no pool slot; beyond this number clients wait in the listen backlog.",
    ),
    cfg.IntOpt(
        "tcp_keepidle",
        default=600,
        min=1,
        help="Seconds of idle time before TCP keep-alive probes start.",
    ),
    cfg.StrOpt(
        "wsgi_log_format",
        default='%(client_ip)s "%(request_line)s" status: %(status_code)s '
        "len: %(body_length)s time: %(wall_seconds).7f",
        help="Format of the access log line written for each request. Keys: "
        "client_ip, request_line, status_code, body_length, wall_seconds, "
        "date_time, request_id.",
    ),
    cfg.BoolOpt(
        "wsgi_server_debug",
        default=False,
        help="Send tracebacks in 500 responses. Never enable this in production.",
    ),
]

# --- TLS (namespace wsgisvc.sslutils, section [ssl]) --------------------------

ssl_group = cfg.OptGroup("ssl", title="TLS options for the WSGI server")

ssl_opts = [
    cfg.StrOpt("cert_file", help="Certificate file (PEM) the server presents."),
    cfg.StrOpt("key_file", help="Private key file (PEM) of the certificate."),
    cfg.StrOpt(
        "ca_file",
        help="CA bundle used to verify clients; when set, clients must present a "
        "certificate signed by it.",
    ),
    cfg.StrOpt(
        "version",
        help="Lowest TLS version accepted: TLSv1_2 or TLSv1_3 (default: the "
        "Python ssl module's default minimum).",
    ),
    cfg.StrOpt("ciphers", help="OpenSSL cipher list for TLS 1.2 connections."),
]

# --- periodic tasks (namespace wsgisvc.periodic_task) -------------------------

periodic_task_opts = [
    cfg.BoolOpt(
        "run_external_periodic_tasks",
        default=True,
        help="Run periodic tasks marked external_process_ok in this process; turn "
        "off when another process runs them.",
    ),
]

# --- the services table (namespace wsgisvc.registry, section [database]) ------

database_group = cfg.OptGroup("database", title="The services table")

database_opts = [
    cfg.StrOpt(
        "connection",
        secret=True,
        help="SQLAlchemy URL of the database, e.g. "
        "postgresql+psycopg://user@host/db or mysql+pymysql://user@host/db. "
        "Default: a SQLite file wsgisvc.sqlite under state_path.",
    ),
    cfg.IntOpt(
        "connect_timeout",
        default=5,
        min=1,
        help="Seconds to wait for a database connection before the attempt fails.",
    ),
]


# --- Prometheus metrics (namespace wsgisvc.metrics) ---------------------------

metrics_opts = [
    cfg.HostAddressOpt(
        "metrics_listen",
        default="127.0.0.1",
        help="Address the Prometheus metrics listener binds; it serves /metrics "
        "of every worker from the parent process. Metrics can tell an outsider "
        "much about the service, hence loopback by default.",
    ),
    cfg.PortOpt(
        "metrics_listen_port",
        help="Port of the Prometheus metrics listener. Unset (the default) turns "
        "metrics off: no listener, no metrics directory, no prometheus_client. "
        "0 lets the kernel choose a free port, which is logged at start.",
    ),
]


# --- oslo-config-generator entry points ---------------------------------------


def list_service_opts():
    return [
        (
            None,
            launcher_opts
            + service_opts
            + [worker_rss_opt("worker")]
            + wsgi_service_opts("osapi"),
        )
    ]


def list_wsgi_opts():
    return [(None, wsgi_opts)]


def list_ssl_opts():
    return [(ssl_group, ssl_opts)]


def list_periodic_task_opts():
    return [(None, periodic_task_opts)]


def list_registry_opts():
    return [(database_group, database_opts)]


def list_metrics_opts():
    return [(None, metrics_opts)]
