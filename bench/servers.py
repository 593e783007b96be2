"""The servers under test: how to start each one, find its port, and stop it.

Every server runs in its own session (so its process group holds the master and
all its workers), on 127.0.0.1, serving the same paste app with 2 worker processes
(``--workers``; waitress: one process, 8 threads, as a reference). The
``wsgisvc-api*`` servers run from the bench's own venv, or from the ``bin/`` of
another interpreter's venv (``--python``: a free-threaded build's). A server
that can report the port the kernel chose (port 0) is asked to; for the others
the bench reserves a free port by binding port 0 and closing it just before the
exec.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from wsgisvc import config

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
WORKERS = 2
THREADS = 8


class ServerError(RuntimeError):
    """A server did not start, or died; the message carries its log tail."""


@dataclass
class Context:
    """What every server is started with: one paste app, one place for logs."""

    paste: Path
    app: str
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: int = WORKERS
    wsgisvc_bin: Path = VENV_BIN  # where wsgisvc-api is: --python's venv


@dataclass
class ServerSpec:
    """One way of serving the paste app.

    ``argv(ctx, port)`` builds the command line; ``port_pattern`` is a regex whose
    ``port`` group is found in the server's log when it bound port 0 itself, or
    None when the bench must reserve a port up front.
    """

    name: str
    argv: object  # Callable[[Context, int], list[str]]
    port_pattern: str | None
    reloads_on_hup: bool = True
    available: object = None  # Callable[[], str | None]: why not, or None
    env: dict[str, str] = field(default_factory=dict)  # beside the Context's


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wsgisvc_conf(ctx: Context, extra: str = "") -> Path:
    """Write the --config-file wsgisvc-api runs with; port 0 is logged back.
    ``extra`` is appended to [DEFAULT] (a variant's one difference)."""
    conf = ctx.workdir / "wsgisvc-bench.conf"
    state = ctx.workdir / "state"  # a private SQLite services table per run
    state.mkdir(exist_ok=True)
    conf.write_text(
        "[DEFAULT]\n"
        f"state_path = {state}\n"
        "osapi_listen = 127.0.0.1\n"
        "osapi_listen_port = 0\n"
        f"osapi_workers = {ctx.workers}\n"
        f"api_paste_config = {ctx.paste}\n"
        "graceful_shutdown_timeout = 30\n" + extra
    )
    return conf


def _wsgisvc_api_with(extra: str = ""):
    def argv(ctx: Context, port: int) -> list[str]:
        conf = _wsgisvc_conf(ctx, extra)
        return [str(ctx.wsgisvc_bin / "wsgisvc-api"), "--config-file", str(conf)]

    return argv


_wsgisvc_api = _wsgisvc_api_with()
# The watchdog on (wsgisvc.watchdog): its cost beside the default (off).
_WATCHDOG = "osapi_worker_timeout = 10\nosapi_slow_request_seconds = 10\n"
# The default levels plus the access line's logger at WARN: what the line
# costs, measured beside the default (not a configuration to run; the access
# log stays on by default).
_NO_ACCESS_LOG = (
    "default_log_levels = "
    + ",".join([*config.DEFAULT_LOG_LEVELS, "wsgisvc.access=WARN"])
    + "\n"
)


def _gunicorn(worker_class: str, *extra: str):
    def argv(ctx: Context, port: int) -> list[str]:
        return [
            str(VENV_BIN / "gunicorn"),
            "--paste",
            f"{ctx.paste}#{ctx.app}",
            "-w",
            str(ctx.workers),
            "-k",
            worker_class,
            "-b",
            "127.0.0.1:0",
            "--graceful-timeout",
            "30",
            *extra,
        ]

    return argv


def _uwsgi(threads: int):
    """uWSGI as devstack's ``write_uwsgi_config`` (lib/apache) writes it for every
    OpenStack API, and as keystone's example uwsgi ini has it: master, lazy-apps,
    thunder-lock, threads enabled, Connection: close, a graceful SIGTERM, and a
    module that loads the paste app (bench._paste_app, as granian's)."""

    def argv(ctx: Context, port: int) -> list[str]:
        return [
            str(VENV_BIN / "uwsgi"),
            "--master",
            "--processes",
            str(ctx.workers),
            "--threads",
            str(threads),
            "--enable-threads",
            "--thunder-lock",
            "--lazy-apps",
            "--http-socket",
            f"127.0.0.1:{port}",
            # devstack's: --http-socket closes the connection after each response
            # but does not say so, which wrk counts as a read error
            "--add-header",
            "Connection: close",
            "--buffer-size",
            "65535",
            "--die-on-term",
            "--hook-master-start",
            "unix_signal:15 gracefully_kill_them_all",
            # the bench's own: the default backlog of 100 would refuse W3's 256
            # connections; the app must load or uWSGI must exit; the venv's Python
            "--listen",
            "1024",
            "--need-app",
            "--module",
            "bench._paste_app:app",
            "--virtualenv",
            str(VENV_BIN.parent),
        ]

    return argv


def _waitress(ctx: Context, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench._waitress",
        "--paste",
        str(ctx.paste),
        "--app",
        ctx.app,
        "--threads",
        str(THREADS),
    ]


def _granian(ctx: Context, port: int) -> list[str]:
    return [
        str(VENV_BIN / "granian"),
        "--interface",
        "wsgi",
        "--workers",
        str(ctx.workers),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "bench._paste_app:app",
    ]


def _eventlet_wsgi(ctx: Context, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench._eventlet_wsgi",
        "--paste",
        str(ctx.paste),
        "--app",
        ctx.app,
        "--workers",
        str(ctx.workers),
    ]


NGINX_CONF = """daemon off; worker_processes {workers}; pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log; events {{ worker_connections 4096; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port};
  location / {{ default_type application/json; return 200 '{{"pong": true}}'; }} }} }}
"""


def _nginx(ctx: Context, port: int) -> list[str]:
    conf = ctx.workdir / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(workers=ctx.workers, workdir=ctx.workdir, port=port)
    )
    return [shutil.which("nginx") or "nginx", "-c", str(conf), "-p", str(ctx.workdir)]


def _needs_program(name: str):
    def available() -> str | None:
        return None if shutil.which(name) else f"{name} not installed"

    return available


def _needs(*names: str):
    def available() -> str | None:
        missing = [n for n in names if not (VENV_BIN / n).exists()]
        if missing:
            return (
                f"{', '.join(missing)} not installed in {VENV_BIN.parent} "
                "(pip install -e . and pip install -r bench/requirements.txt)"
            )
        return None

    return available


def _needs_module(module: str, where: str):
    def available() -> str | None:
        probe = subprocess.run(
            [sys.executable, "-c", f"import {module}"], capture_output=True
        )
        if probe.returncode:
            return f"{module} not importable: {where}"
        return None

    return available


_GUNICORN_PORT = r"Listening at: http://127\.0\.0\.1:(?P<port>\d+)"

SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in [
        ServerSpec(
            "wsgisvc-api",
            _wsgisvc_api,
            r"osapi listening on http://127\.0\.0\.1:(?P<port>\d+)",
            available=_needs("wsgisvc-api"),
        ),
        ServerSpec(
            "wsgisvc-api-threads",
            _wsgisvc_api,
            r"osapi listening on http://127\.0\.0\.1:(?P<port>\d+)",
            available=_needs("wsgisvc-api"),
            env={"WSGISVC_BACKEND": "threading"},
        ),
        ServerSpec(
            "wsgisvc-api-nolog",
            _wsgisvc_api_with(_NO_ACCESS_LOG),
            r"osapi listening on http://127\.0\.0\.1:(?P<port>\d+)",
            available=_needs("wsgisvc-api"),
        ),
        ServerSpec(
            "wsgisvc-api-threads-nolog",
            _wsgisvc_api_with(_NO_ACCESS_LOG),
            r"osapi listening on http://127\.0\.0\.1:(?P<port>\d+)",
            available=_needs("wsgisvc-api"),
            env={"WSGISVC_BACKEND": "threading"},
        ),
        ServerSpec(
            "wsgisvc-api-watchdog",
            _wsgisvc_api_with(_WATCHDOG),
            r"osapi listening on http://127\.0\.0\.1:(?P<port>\d+)",
            available=_needs("wsgisvc-api"),
        ),
        ServerSpec(
            "wsgisvc-api-threads-watchdog",
            _wsgisvc_api_with(_WATCHDOG),
            r"osapi listening on http://127\.0\.0\.1:(?P<port>\d+)",
            available=_needs("wsgisvc-api"),
            env={"WSGISVC_BACKEND": "threading"},
        ),
        ServerSpec(
            "gunicorn-wsgisvc",
            _gunicorn("wsgisvc.gunicorn.Worker"),
            _GUNICORN_PORT,
            available=_needs("gunicorn"),
        ),
        ServerSpec(
            "gunicorn-sync",
            _gunicorn("sync"),
            _GUNICORN_PORT,
            available=_needs("gunicorn"),
        ),
        ServerSpec(
            "gunicorn-gthread",
            _gunicorn("gthread", "--threads", str(THREADS)),
            _GUNICORN_PORT,
            available=_needs("gunicorn"),
        ),
        ServerSpec(
            "gunicorn-gevent",
            _gunicorn("gevent"),
            _GUNICORN_PORT,
            available=_needs_module("gevent", "pip install -r bench/requirements.txt"),
        ),
        ServerSpec(
            "granian",
            _granian,
            None,
            available=_needs("granian"),
        ),
        ServerSpec(
            "eventlet-wsgi",
            _eventlet_wsgi,
            r"eventlet.wsgi listening on http://127\.0\.0\.1:(?P<port>\d+)",
            reloads_on_hup=False,
        ),
        ServerSpec(
            "nginx",
            _nginx,
            None,
            reloads_on_hup=False,
            available=_needs_program("nginx"),
        ),
        ServerSpec("uwsgi", _uwsgi(1), None, available=_needs("uwsgi")),
        ServerSpec("uwsgi-threads", _uwsgi(THREADS), None, available=_needs("uwsgi")),
        ServerSpec(
            "waitress",
            _waitress,
            r"Serving on http://127\.0\.0\.1:(?P<port>\d+)",
            reloads_on_hup=False,
            available=_needs_module(
                "waitress", "pip install -r bench/requirements.txt"
            ),
        ),
    ]
}


class RunningServer:
    """A started server: its master pid (= process group), port and log."""

    def __init__(self, spec: ServerSpec, ctx: Context) -> None:
        self.spec = spec
        self.log_path = ctx.workdir / f"{spec.name}.log"
        port = 0 if spec.port_pattern else _free_port()
        argv = spec.argv(ctx, port)
        env = dict(os.environ, PYTHONUNBUFFERED="1", **ctx.extra_env, **spec.env)
        env.update(BENCH_PASTE=str(ctx.paste), BENCH_APP=ctx.app)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), env.get("PYTHONPATH", "")) if p
        )
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            log.write(f"\n=== bench: {' '.join(argv)}\n".encode())
            self.started = time.monotonic()
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.proc.pid
        self.port = port or None

    # --- start-up --------------------------------------------------------------

    def log_text(self) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = "\n".join(self.log_text().splitlines()[-15:])
            raise ServerError(
                f"{self.spec.name} (pid {self.pid}) exited with status "
                f"{self.proc.returncode} before answering:\n{tail}"
            )

    def wait_ready(self, timeout: float = 60.0, poll: float = 0.005) -> float:
        """Block until GET /v1/ping answers 200; return seconds since exec.

        Polls fast (5 ms) because this is also the cold-start figure S.
        """
        deadline = self.started + timeout
        pattern = re.compile(self.spec.port_pattern) if self.spec.port_pattern else None
        while time.monotonic() < deadline:
            self._check_alive()
            if self.port is None:
                match = pattern.search(self.log_text())
                if match:
                    self.port = int(match.group("port"))
            if self.port is not None and self.answers():
                return time.monotonic() - self.started
            time.sleep(poll)
        self.stop()
        raise ServerError(f"{self.spec.name} did not answer within {timeout:.0f} s")

    def answers(self, timeout: float = 2.0) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", "/v1/ping", headers={"Connection": "close"})
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- signals and stopping -----------------------------------------------------

    def signal_master(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole group, SIGKILL it after ``timeout``; reap the master."""
        for signum, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, signum)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if self.proc.poll() is not None and not group_pids(self.pid):
                    return
                time.sleep(0.05)

    def accept_queue(self) -> int | None:
        """Connections waiting in the listener's accept queue (None: not found).

        For a listening socket the kernel reports the accept backlog as rx_queue
        in /proc/net/tcp: a request sent on such a connection is not in flight
        yet, the server has not taken it.
        """
        local = f"0100007F:{self.port:04X}"
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except FileNotFoundError:
                continue
            for line in lines:
                fields = line.split()
                if fields[1] == local and fields[3] == "0A":
                    return int(fields[4].partition(":")[2], 16)
        return None

    # --- CPU and memory --------------------------------------------------------

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the live processes of the group.

        CPU per request is the figure that survives a noisy shared machine: other
        load slows a server down but does not make its requests cost more CPU.
        """
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in group_pids(self.pid):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            fields = stat.rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick

    def memory(self) -> dict[str, float]:
        """RSS, PSS and peak RSS (VmHWM) in MiB, summed over the process group,
        and the master's own PSS (what a parent carries beside its workers)."""
        totals = {
            "rss_mib": 0.0,
            "pss_mib": 0.0,
            "peak_rss_mib": 0.0,
            "master_pss_mib": 0.0,
            "processes": 0,
        }
        for pid in group_pids(self.pid):
            try:
                rollup = _kb_fields(Path(f"/proc/{pid}/smaps_rollup").read_text())
                status = _kb_fields(Path(f"/proc/{pid}/status").read_text())
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            totals["rss_mib"] += rollup.get("Rss", 0) / 1024
            totals["pss_mib"] += rollup.get("Pss", 0) / 1024
            if pid == self.pid:
                totals["master_pss_mib"] = rollup.get("Pss", 0) / 1024
            totals["peak_rss_mib"] += status.get("VmHWM", 0) / 1024
            totals["processes"] += 1
        return totals


def _kb_fields(text: str) -> dict[str, int]:
    fields = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0])
    return fields


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``, read from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids
