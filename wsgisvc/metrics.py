"""Prometheus metrics: what every worker counts, and the parent that serves them.

prometheus_client's multiprocess mode does the counting and the aggregation:
each process writes its values to memory-mapped files in one directory, and
whoever serves ``/metrics`` merges the files. The top process of a wsgisvc
service (the ProcessLauncher parent, or a single-process ServiceLauncher)
owns that directory: ``start_collector()`` creates it, private and empty,
before the first fork, names it in ``PROMETHEUS_MULTIPROC_DIR`` for the
children, and serves the aggregate on its own listener (``metrics_listen``,
``metrics_listen_port``). A worker that died is passed to
``mark_process_dead``: its counters stay in the totals, its live gauges go.

Off (``metrics_listen_port`` unset) is the default, and off means nothing:
no directory, no listener, and prometheus_client is never imported. Every
hook below is then one global test and a return, so the launchers, the
server and the RPC dispatcher call them unconditionally, one line each.

Per-request cost is two memory-mapped writes (a counter and a histogram);
the in-flight and pool gauges are plain integers a sampler thread writes
once per ``SAMPLE_INTERVAL``, not on every request.
"""

from __future__ import annotations

import atexit
import glob
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable

from oslo_config import cfg

from wsgisvc import errors, opts

LOG = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds between two writes of the sampled gauges (in flight, pool).
SAMPLE_INTERVAL = 1.0
SERVICE_UP = "wsgisvc_service_up"
SERVICE_UP_HELP = "1 while the last heartbeat of this service's row succeeded"
# Methods counted by name; anything else a client sends is counted as OTHER,
# so a client cannot grow the label set (RPC: the endpoints' methods, rpc.py).
HTTP_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")
)
OTHER = "other"


class MetricsError(errors.StartupError):
    """Metrics cannot start; the message is the one line an operator reads."""


class _Instruments:
    """The metrics of one service tree, created once multiprocess mode is set."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram, values

        if not getattr(values.ValueClass, "_multiprocess", False):
            raise MetricsError(
                "prometheus_client was imported before wsgisvc set "
                f"{ENV}; metrics would not add up across workers"
            )
        # registry=None: the collector reads the files, not a registry.
        self.http_requests = Counter(
            "wsgisvc_http_requests",
            "HTTP requests answered",
            ["app", "method", "code"],
            registry=None,
        )
        self.http_duration = Histogram(
            "wsgisvc_http_request_duration_seconds",
            "Time from request line to response sent",
            ["app"],
            registry=None,
        )
        # Per-process gauges: labelled, so only the processes that set them
        # have them, and "liveall", so they go with the process (pid label).
        self.in_flight = self._live_gauge(
            Gauge, "wsgisvc_http_requests_in_flight", "Requests being served"
        )
        self.pool_size = self._live_gauge(
            Gauge, "wsgisvc_pool_size", "Configured size of the request pool"
        )
        self.pool_free = self._live_gauge(
            Gauge, "wsgisvc_pool_free", "Free places in the request pool"
        )
        # Written by the processes whose service keeps a row: the workers of
        # an RPC service. The top process's own row (an API's) is the
        # collector's (see heartbeat()).
        self.service_up = Gauge(
            SERVICE_UP,
            SERVICE_UP_HELP,
            ["binary"],
            multiprocess_mode="liveall",
            registry=None,
        )
        # Written by the parent only; created there on first use, so that a
        # process tree without one (gunicorn's) shows no such gauge.
        self._workers = None
        self.worker_exits = Counter(
            "wsgisvc_worker_exits",
            "Worker processes that exited, by reason",
            ["reason"],
            registry=None,
        )
        self.reloads = Counter(
            "wsgisvc_reloads", "Configuration reloads (SIGHUP)", registry=None
        )
        self.rpc_calls = Counter(
            "wsgisvc_rpc_calls",
            "RPC messages dispatched to an endpoint",
            ["method", "outcome"],
            registry=None,
        )
        self.rpc_duration = Histogram(
            "wsgisvc_rpc_call_duration_seconds",
            "Time an endpoint took to handle an RPC message",
            ["method"],
            registry=None,
        )
        self.heartbeat_failures = Counter(
            "wsgisvc_heartbeat_failures",
            "Heartbeats that could not be written to the services table",
            registry=None,
        )
        self._request_children: dict[tuple, Callable[[], None]] = {}
        self._duration_children: dict[str, Callable[[float], None]] = {}
        self.in_flight_now: dict[str, int] = {}
        self.pools: dict[str, tuple[object, Callable[[], int]]] = {}
        self._sampler_pid: int | None = None

    def set_workers(self, count: int) -> None:
        if self._workers is None:
            from prometheus_client import Gauge

            self._workers = Gauge(
                "wsgisvc_workers",
                "Worker processes running",
                multiprocess_mode="livesum",
                registry=None,
            )
        self._workers.set(count)

    @staticmethod
    def _live_gauge(gauge_class, name: str, documentation: str):
        return gauge_class(
            name, documentation, ["app"], multiprocess_mode="liveall", registry=None
        )

    def count_request(self, app: str, method: str, code: int | str, seconds: float):
        key = (app, method, code)
        inc = self._request_children.get(key)
        if inc is None:
            label = method if method in HTTP_METHODS else OTHER
            inc = self.http_requests.labels(app, label, str(code)).inc
            self._request_children[key] = inc
        inc()
        observe = self._duration_children.get(app)
        if observe is None:
            observe = self._duration_children[app] = self.http_duration.labels(
                app
            ).observe
        observe(seconds)

    def start_sampler(self) -> None:
        """Write the sampled gauges every SAMPLE_INTERVAL from now on (once per
        process: the thread is started where the first pool is tracked)."""
        if self._sampler_pid != os.getpid():
            self._sampler_pid = os.getpid()
            threading.Thread(
                target=self._sample_forever, name="metrics-sampler", daemon=True
            ).start()

    def _sample_forever(self) -> None:
        tick = threading.Event()
        while True:
            self.sample()
            tick.wait(SAMPLE_INTERVAL)

    def sample(self) -> None:
        for app, (pool, in_flight) in list(self.pools.items()):
            self.pool_size.labels(app).set(pool.size)
            self.pool_free.labels(app).set(pool.free())
            self.in_flight.labels(app).set(in_flight())


# None: metrics are off in this process.
_on: _Instruments | None = None


def enabled() -> bool:
    return _on is not None


# --- the process that owns the directory --------------------------------------


class _Collector:
    """The private directory and the listener that serves its aggregate."""

    def __init__(self, host: str, port: int) -> None:
        # Imported when metrics are on: off means no import.
        from wsgiref import simple_server

        from prometheus_client import CollectorRegistry, exposition, make_wsgi_app

        class SilentHandler(simple_server.WSGIRequestHandler):
            def log_message(self, format, *args) -> None:
                pass  # scrapes are not worth a log line each

        self.directory = os.environ[ENV]
        registry = CollectorRegistry()
        registry.register(self)

        class Server(exposition.ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        try:
            self.server = simple_server.make_server(
                host, port, make_wsgi_app(registry), Server, SilentHandler
            )
        except OSError as exc:
            raise MetricsError(
                f"metrics cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        self.host, self.port = self.server.server_address[:2]
        self.owner = os.getpid()
        self.service_up: dict[str, float] = {}  # this process's rows, by binary
        # poll_interval=None: the thread sleeps until a scrape comes, instead
        # of waking the idle parent twice a second.
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": None},
            name="metrics-listener",
            daemon=True,
        )
        self.thread.start()

    def collect(self):
        """MultiProcessCollector's merge, of the files that have a header.

        A worker creates its file and then sizes it: a scrape in between
        would find it empty and fail (prometheus_client reads the header
        unchecked), so a file still empty is left for the next scrape.
        """
        from prometheus_client.multiprocess import MultiProcessCollector

        paths = glob.glob(os.path.join(self.directory, "*.db"))
        merged = list(
            MultiProcessCollector.merge(
                [path for path in paths if _has_header(path)], accumulate=True
            )
        )
        return self._add_service_up(merged)

    def _add_service_up(self, merged: list) -> list:
        """The service_up samples of this process's own rows, in the family
        the workers' files make, or in one of their own."""
        from prometheus_client.metrics_core import Metric

        own = sorted(self.service_up.items())
        if not own:
            return merged
        family = next((m for m in merged if m.name == SERVICE_UP), None)
        if family is None:
            family = Metric(SERVICE_UP, SERVICE_UP_HELP, "gauge")
            merged.append(family)
        for binary, value in own:
            labels = {"binary": binary, "pid": str(self.owner)}
            family.add_sample(SERVICE_UP, labels, value)
        return merged

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self.server.server_close()
        if os.getpid() == self.owner:
            shutil.rmtree(self.directory, ignore_errors=True)


def _has_header(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except FileNotFoundError:  # a dead worker's live gauges, just removed
        return False


_collector: _Collector | None = None


def register_opts(conf: cfg.ConfigOpts) -> None:
    opts.register(conf, opts.metrics_opts)


def start_collector(conf: cfg.ConfigOpts) -> bool:
    """In the top process, before any fork: when metrics are configured,
    create the directory, turn the hooks on and start serving; True if on.

    Raises MetricsError (one line) when the listener cannot bind.
    """
    global _on, _collector
    register_opts(conf)
    if conf.metrics_listen_port is None or _collector is not None:
        return _collector is not None
    os.environ[ENV] = tempfile.mkdtemp(prefix="wsgisvc-metrics-")
    try:
        _on = _Instruments()
        _collector = _Collector(conf.metrics_listen, conf.metrics_listen_port)
    except MetricsError:
        shutil.rmtree(os.environ.pop(ENV), ignore_errors=True)
        _on = None
        raise
    atexit.register(stop_collector)
    LOG.info("metrics listening on %s", _collector.url)
    return True


def stop_collector() -> None:
    """Close the listener and remove the directory (at the owner's exit)."""
    global _collector, _on
    if _collector is not None:
        _collector.close()
        _collector = None
        os.environ.pop(ENV, None)
        _on = None


def forked() -> None:
    """In a new worker: let go of the parent's listener (the directory and
    the hooks stay; prometheus_client opens this pid's files by itself)."""
    if _collector is not None:
        _collector.server.socket.close()


def use_environment() -> bool:
    """Turn the hooks on in a process whose directory someone else owns
    (a gunicorn worker under ``PROMETHEUS_MULTIPROC_DIR``); True if on."""
    global _on
    if _on is None and os.environ.get(ENV):
        _on = _Instruments()
    return _on is not None


def process_dead(pid: int) -> None:
    """The parent reaped ``pid``: drop its live gauges, keep its counters."""
    if _collector is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, _collector.directory)


# --- hooks --------------------------------------------------------------------


def request_started(app: str) -> None:
    if _on is not None:
        _on.in_flight_now[app] = _on.in_flight_now.get(app, 0) + 1


def http_request_done(app: str, method: str, status: str, started: float) -> None:
    """A request the HTTP core answered, as it has it: the method, the status
    line, and when it started (``time.monotonic()``)."""
    if _on is not None:
        _on.count_request(app, method, status[:3], time.monotonic() - started)


def request_ended(app: str) -> None:
    """No longer in flight, counted elsewhere (``request_counted``): for a
    server whose answer and end are two places, as gunicorn's are."""
    if _on is not None:
        _on.in_flight_now[app] -= 1


def request_counted(app: str, method: str, code: int, seconds: float) -> None:
    if _on is not None:
        _on.count_request(app, method, code, seconds)


def track_pool(app: str, pool, in_flight: Callable[[], int] | None = None) -> None:
    """Sample ``app``'s pool (its ``size`` and ``free()``) from now on, and
    ``in_flight()``, or else the requests counted by request_started/ended."""
    if _on is not None:
        if in_flight is None:
            counted = _on.in_flight_now
            counted.setdefault(app, 0)
            in_flight = lambda: counted[app]  # noqa: E731
        _on.pools[app] = (pool, in_flight)
        _on.start_sampler()


def workers(count: int) -> None:
    if _on is not None:
        _on.set_workers(count)


def worker_exited(status: int, expected: str | None = None) -> None:
    """A worker exited: ``expected`` names why when the parent asked it to
    (``stopped``, ``replaced``, ``retired``); otherwise the status says."""
    if _on is not None:
        _on.worker_exits.labels(expected or _exit_reason(status)).inc()


def _exit_reason(status: int) -> str:
    """``killed`` (by a signal), ``failed`` (non-zero status) or ``exited``."""
    if os.WIFSIGNALED(status):
        return "killed"
    return "failed" if os.waitstatus_to_exitcode(status) else "exited"


def reloaded() -> None:
    if _on is not None:
        _on.reloads.inc()


def rpc_call_finished(method: str, outcome: str, seconds: float) -> None:
    if _on is not None:
        _on.rpc_calls.labels(method, outcome).inc()
        _on.rpc_duration.labels(method).observe(seconds)


def heartbeat(binary: str, ok: bool) -> None:
    """A heartbeat of ``binary``'s row was written (``ok``) or failed.

    In the top process (an API's row, or a single process's) the value is
    the collector's, kept in memory, never in a multiprocess file: a value
    this process created would be copied into each worker it forks from
    then on (prometheus_client resets every value of the parent into the
    child's own file, at 0), and every worker forked after the first
    heartbeat (on a reload, a respawn) would say its service is down.
    """
    if _on is not None:
        if _collector is not None and _collector.owner == os.getpid():
            _collector.service_up[binary] = 1.0 if ok else 0.0
        else:
            _on.service_up.labels(binary).set(1 if ok else 0)
        if not ok:
            _on.heartbeat_failures.inc()
