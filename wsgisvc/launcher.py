"""Launchers that run services in this process.

``ServiceLauncher`` runs its services in the calling process, on the backend's
greenthreads or threads; each worker a ``ProcessLauncher`` forks
(``process_launcher``) runs one too. Its one loop sleeps until a signal, a
nudge from a service or the parent's death wakes it (see ``signals``), acts on
the queued signals in order, and returns the reason it stopped; it never polls.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import signal
import socket
import threading
import time
from collections.abc import Callable

from oslo_config import cfg
from oslo_log import log as logging

from wsgisvc import (
    backend,
    config,
    errors,
    metrics,
    opts,
    pidfile,
    recycling,
    report,
    signals,
    systemd,
    upgrade,
    watchdog,
)
from wsgisvc.http import accesslog
from wsgisvc.signals import Action

LOG = logging.getLogger(__name__)

# SIGTTOU is how a ProcessLauncher retires one of its workers (a reload, or
# one worker fewer): its SIGTERM means the whole service stops.
HANDLED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGUSR2,
)

STATUS_OK = 0
STATUS_FAILED = 1
# A graceful stop whose loop is stuck (a service's stop() or wait() blocking in
# a call no scheduler can preempt) still ends this long past its deadline.
STUCK_STOP_GRACE = 1.0


class ServiceBase(abc.ABC):
    """What a launcher runs.

    ``start()`` spawns greenthreads (threads, on the threading backend) and
    returns; it may be called again after ``stop()`` and ``wait()`` (a SIGHUP
    restart in a single process). ``stop()`` stops taking new work; it is also
    called in a ProcessLauncher's parent, where ``start()`` never ran, to close
    listening sockets early: there it runs on a thread of its own, so it must
    only close what the constructor opened. ``wait()`` returns once in-flight
    work is done. ``reset()`` runs on SIGHUP. ``serving()`` is the one
    that need not be written.

    ``on_failure`` is set by the launcher before ``start()``: a service calls
    it, with one line saying why, when it can no longer do its work (say, its
    listener broke); the process then stops gracefully and exits with status
    1, and a ProcessLauncher's parent forks a new worker.

    ``recycling`` says when a ProcessLauncher replaces a worker of this
    service (see ``wsgisvc.recycling``); read in the parent, so a service
    re-reads it in ``reset()`` when its options can change. So is
    ``watchdog`` (see ``wsgisvc.watchdog``): when a worker that stopped
    turning is replaced.
    """

    recycling: recycling.Limits = recycling.OFF
    watchdog: watchdog.Settings = watchdog.OFF
    on_failure: Callable[[str], None] | None = None

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def wait(self) -> None: ...

    @abc.abstractmethod
    def reset(self) -> None: ...

    def serving(self) -> None:  # noqa: B027 - optional, unlike the four above
        """Called once in the top process (a ServiceLauncher's own, a
        ProcessLauncher's parent) when the service has started, here or in
        the first workers: for work that serving must not wait for, and the
        workers must not do (an API's row in the services table). It runs on
        the launcher's loop, so it spawns a task for anything slow; a reload
        does not call it again. The default does nothing.
        """

    def listening_sockets(self) -> dict[str, socket.socket]:
        """The listening sockets an upgrade hands to the new binary, each
        under the name the new binary's service takes it by (see
        ``systemd.activated_socket``); none by default. Called in a
        ProcessLauncher's parent, where only the constructor ran."""
        return {}


def tell_serving(services: list[ServiceBase]) -> None:
    """Each service's ``serving()``; one that fails is logged, not fatal."""
    for service in services:
        try:
            service.serving()
        except Exception:
            LOG.exception("%s failed in serving()", service)


class Services:
    """The services of one process, each started on a task of its own.

    ``on_change`` is called when a service finished starting or failed to, so
    the launcher's loop can look again. A stop that comes while a service is
    still starting reaches it once its start() returned, and ``wait()`` waits
    for every start first: a signal sent the instant a worker exists stops it
    as surely as a later one.
    """

    def __init__(self, on_change) -> None:
        self.services: list[ServiceBase] = []
        self.failed: list[tuple[ServiceBase, BaseException]] = []
        self.broken: list[str] = []  # why running services called on_failure
        self._starting: set[int] = set()  # id() of services in start()
        self._none_starting = backend.Event()
        self._none_starting.set()
        self._stopped = False
        # start() runs on tasks of its own (threads, on threading): who stops
        # a service that was starting is decided under this lock.
        self._lock = threading.Lock()
        self._on_change = on_change

    @property
    def all_started(self) -> bool:
        return not self._starting and not self.failed

    def add(self, service: ServiceBase) -> None:
        self.services.append(service)
        self._spawn_start(service)

    def _spawn_start(self, service: ServiceBase) -> None:
        with self._lock:
            self._starting.add(id(service))
            self._none_starting.clear()
        backend.spawn(self._start, service)

    def _start(self, service: ServiceBase) -> None:
        stop_now = False
        service.on_failure = self._broke
        try:
            service.start()
        except errors.StartupError as exc:  # one line: the app did not load
            LOG.error("%s cannot start: %s", service, exc)
            recycling.tell_parent("cannot-start", " ".join(str(exc).split()))
            self.failed.append((service, exc))
        except BaseException as exc:
            LOG.exception("%s failed to start", service)
            self.failed.append((service, exc))
        else:
            stop_now = True  # if a stop() came while we were starting
        finally:
            with self._lock:
                self._starting.discard(id(service))
                stop_now = stop_now and self._stopped
            if stop_now:
                self._stop(service)
            with self._lock:  # wait() goes on once this service is stopped too
                if not self._starting:
                    self._none_starting.set()
            self._on_change()

    def _broke(self, why: str) -> None:
        self.broken.append(why)
        self._on_change()

    def stop(self) -> None:
        """Call each service's stop() once, however often this is called."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            started = [s for s in self.services if id(s) not in self._starting]
        for service in started:
            self._stop(service)

    def _stop(self, service: ServiceBase) -> None:
        try:
            service.stop()
        except Exception:
            LOG.exception("%s failed to stop", service)

    def wait(self) -> None:
        self._none_starting.wait()
        for service in self.services:
            try:
                service.wait()
            except Exception:
                LOG.exception("%s failed while waiting for it to stop", service)

    def reset(self) -> None:
        for service in self.services:
            service.reset()

    def start_again(self) -> None:
        """Reset and start every stopped service again (SIGHUP, reload)."""
        self.reset()
        self.broken.clear()
        with self._lock:
            self._stopped = False
        for service in self.services:
            self._spawn_start(service)


def register_opts(conf: cfg.ConfigOpts) -> None:
    opts.register(conf, opts.launcher_opts)


def log_start(conf: cfg.ConfigOpts) -> None:
    """What every launcher says once when it starts."""
    LOG.info("pid %d: running on %s", os.getpid(), backend.describe())
    if conf.log_options:
        conf.log_opt_values(LOG, logging.DEBUG)


def shutdown_timeout(conf: cfg.ConfigOpts) -> float | None:
    """graceful_shutdown_timeout as a timeout: None (forever) when it is 0."""
    return conf.graceful_shutdown_timeout or None


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def stop_grace(conf: cfg.ConfigOpts) -> float | None:
    """How long a graceful stop may take in all: graceful_drain_delay, then
    graceful_shutdown_timeout (None, forever, when that is 0)."""
    timeout = shutdown_timeout(conf)
    return None if timeout is None else conf.graceful_drain_delay + timeout


# Set when a graceful stop begins with a graceful_drain_delay: from then on
# this process is on its way out, and its healthcheck says so.
_draining = False


def draining() -> bool:
    """True once this process got its stop and waits out graceful_drain_delay
    (and after: it does not serve new connections again)."""
    return _draining


# Set while a SIGHUP reload stops, drains and starts this process's services:
# a service that will serve the same address again keeps its listener open,
# so connections wait in its backlog instead of being refused.
_reloading = False


def reloading() -> bool:
    """True from a reload's stop() until the services start again."""
    return _reloading


@dataclasses.dataclass
class Stop:
    """Why a launcher's loop ended, and the exit status that follows."""

    why: str
    status: int


@dataclasses.dataclass
class _Drain:
    """Services stopped; their wait() runs on a task until ``deadline``.

    ``stop`` is the reason when the process stops after the drain; None means
    a SIGHUP reload, after which the services start again. ``done`` is set by
    the task when wait() returned, before it wakes the loop.
    """

    deadline: float | None
    stop: Stop | None = None
    done: object = dataclasses.field(default_factory=lambda: backend.Event())

    @property
    def finished(self) -> bool:
        return self.done.is_set()

    @property
    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()


class Launcher:
    """Runs services in this process; the base of ServiceLauncher."""

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        restart_method: str = "reload",
        parent_death_fd: int | None = None,
    ) -> None:
        if restart_method not in ("reload", "mutate"):
            raise ValueError(
                f"restart_method must be 'reload' or 'mutate', got {restart_method!r}"
            )
        register_opts(conf)
        if parent_death_fd is None:  # the top process serves its own metrics
            log_start(conf)  # before a service starts: the first line it logs
            metrics.start_collector(conf)
            upgrade.take_handover(conf.pid_file)  # an old parent is told later
        self.conf = conf
        self._config = config.Reloader(conf)
        self.restart_method = restart_method
        self._parent_death_fd = parent_death_fd
        self._workers_options: list[str] = []
        self._signals = signals.SignalHandler(HANDLED_SIGNALS)
        self._signals.install()
        self.services = Services(on_change=self._signals.nudge)
        self._drain: _Drain | None = None
        self._delayed_stop: tuple[float, Stop] | None = None  # (until, then)
        self._watchdog = None
        self._notified_ready = False

    def launch_service(
        self, service: ServiceBase, workers: int | str | None = 1
    ) -> None:
        """Run ``service`` here. ``workers``: 1 (None too), or the name of
        an option saying 1: a reload that makes it more says it needs a
        restart."""
        if isinstance(workers, str):
            self._workers_options.append(workers)
            workers = config.workers(self.conf, workers)
        if workers is not None and workers != 1:
            raise ValueError(f"{type(self).__name__} runs one worker, got {workers}")
        check_service(service)
        if self._parent_death_fd is None and service.recycling.active:
            LOG.warning(
                "%s: %s_max_* options do nothing in a single process: no parent "
                "replaces it (run at least 2 workers)",
                service,
                service.recycling.name,
            )
        if self._parent_death_fd is None and service.watchdog.worker_timeout:
            LOG.warning(
                "%s: %s_worker_timeout does nothing in a single process: no "
                "parent replaces it (run at least 2 workers)",
                service,
                service.watchdog.name,
            )
        self.services.add(service)

    def stop(self) -> None:
        systemd.notify("STOPPING=1")
        self.services.stop()

    def restart(self) -> None:
        """SIGHUP. The new configuration is checked whole first: a broken one
        is refused in one line, and the services serve on untouched. reload:
        stop every service and let the loop drain them, then re-read the
        files, reset() and start again; mutate: apply mutable options in
        place and reset() the services."""
        if self.restart_method == "mutate":
            changes = self._config.reload(mutate=True, check=self._check_workers)
            if changes is not None:
                self.services.reset()
            return
        if self._drain is not None:
            LOG.info("already reloading: the files are read when the drain ends")
            return
        if not self._config.check(self._check_workers):
            return
        if self._parent_death_fd is None:  # a worker's parent counts its own
            metrics.reloaded()
        global _reloading
        _reloading = True
        self.services.stop()
        self._begin_drain(stop=None)

    def _check_workers(self, conf: cfg.ConfigOpts) -> None:
        """Part of a reload's check: the workers options are usable."""
        for option in self._workers_options:
            config.workers(conf, option)

    def _apply_reload(self) -> None:
        """At the end of a reload's drain: the files again (checked again:
        they may have changed meanwhile), then the services start."""
        if self._config.reload(check=self._check_workers) is not None:
            for option in self._workers_options:
                count = config.workers(self.conf, option)
                if count != 1:
                    LOG.warning(
                        "reload: %s = %d needs a restart: this process serves "
                        "alone, and goes on doing so",
                        option,
                        count,
                    )
        global _reloading
        _reloading = False
        self.services.start_again()

    def wait(self) -> int:
        """Run until a signal stops the services; return the exit status."""
        stop = self._run()
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._parent_death_fd is None:
            pidfile.remove(self.conf.pid_file)
        LOG.info("pid %d: %s; exit status %d", os.getpid(), stop.why, stop.status)
        return stop.status

    # --- the loop -------------------------------------------------------------

    def _run(self) -> Stop:
        """Sleep, see what happened, act on it; return when the process stops."""
        while True:
            if self._sleep():
                LOG.warning("pid %d: parent process died; stopping", os.getpid())
                return self._stop_at_once("parent process died")
            delayed = self._delayed_stop
            if delayed is not None and time.monotonic() >= delayed[0]:
                self._delayed_stop = None
                self._stop_gracefully(delayed[1])
            if self._drain is not None and (
                self._drain.finished or self._drain.expired
            ):
                stop = self._end_drain()
                if stop is not None:
                    return stop
            while (signo := self._signals.next()) is not None:
                stop = self._act(signo)
                if stop is not None:
                    return stop
            if self._drain is None and self.services.failed:
                return self._stop_at_once("a service failed to start")
            if self._drain is None and self.services.broken:
                why = self.services.broken[0]
                LOG.error("pid %d: %s; stopping gracefully", os.getpid(), why)
                self._stop_gracefully(Stop(why, STATUS_FAILED))
            self._notify_ready_once()

    def _sleep(self) -> bool:
        """Wait for the next event; True when the parent died."""
        watch = () if self._parent_death_fd is None else (self._parent_death_fd,)
        timeout = None if self._drain is None else self._drain.remaining()
        if self._delayed_stop is not None:
            timeout = self._delayed_stop[0] - time.monotonic()
        return bool(self._signals.wait(timeout, watch))

    def _act(self, signo: int) -> Stop | None:
        action = signals.action_for(signo)
        name = signals.signal_name(signo)
        stopping = self._delayed_stop is not None or (
            self._drain is not None and self._drain.stop is not None
        )
        if action is Action.REPORT:
            report.write(self.conf)
            return None
        if action is Action.UPGRADE:
            LOG.info(
                "pid %d got %s: ignored (only a ProcessLauncher parent upgrades)",
                os.getpid(),
                name,
            )
            return None
        if action is Action.FAST_STOP:
            LOG.info("pid %d got %s: stopping at once", os.getpid(), name)
            return self._stop_at_once(f"stopped at once by {name}")
        if stopping:
            LOG.info("pid %d got %s while stopping: ignored", os.getpid(), name)
            return None
        if action is Action.RELOAD and self._ignores_reload():
            return None
        if action is Action.RELOAD:
            LOG.info(
                "pid %d got SIGHUP, not a terminal hang-up: %s",
                os.getpid(),
                "reloading" if self.restart_method == "reload" else "mutating",
            )
            self.restart()
            return None
        if action is Action.ADD_WORKER or (
            action is Action.RETIRE_WORKER and self._parent_death_fd is None
        ):
            LOG.info("pid %d got %s: ignored (no workers here)", os.getpid(), name)
            return None
        if action is Action.RETIRE_WORKER:  # the parent retires this worker
            LOG.info("pid %d is being replaced: stopping gracefully", os.getpid())
            name = "its parent, replacing it"
        elif self.conf.graceful_drain_delay and self._drain is None:
            hangup = action is Action.HANGUP
            self._delay_stop(name, "terminal hung up (SIGHUP)" if hangup else None)
            return None
        elif action is Action.HANGUP:
            LOG.info("pid %d: terminal hung up (SIGHUP); stopping", os.getpid())
        else:
            LOG.info("pid %d got %s: stopping gracefully", os.getpid(), name)
        self._stop_gracefully(Stop(f"stopped by {name}", STATUS_OK))
        return None

    def _ignores_reload(self) -> bool:
        """True, having said so, in a worker whose parent replaces its workers
        on SIGHUP (``reload``): a SIGHUP here came from someone else (``kill``
        aimed at it, ``pkill`` racing the parent), and a reload of its own would
        close the listener it shares with its parent and siblings, and fail to
        bind it again. With ``mutate`` the parent passes SIGHUP on: acted on."""
        if self._parent_death_fd is None or self.restart_method != "reload":
            return False
        LOG.info(
            "pid %d is a worker: SIGHUP is for its parent (pid %d), which "
            "reloads and replaces its workers; ignored",
            os.getpid(),
            os.getppid(),
        )
        return True

    def _delay_stop(self, name: str, what: str | None) -> None:
        """A stop with graceful_drain_delay: serve on, unhealthy, until the
        delay ends; the loop then stops gracefully (see _run). Not for a
        worker being replaced: its siblings serve on meanwhile."""
        global _draining
        _draining = True
        delay = self.conf.graceful_drain_delay
        LOG.info(
            "pid %d: %s: healthcheck answers 503 for graceful_drain_delay=%ss, "
            "then stopping gracefully",
            os.getpid(),
            what or f"got {name}",
            delay,
        )
        self._delayed_stop = (
            time.monotonic() + delay,
            Stop(f"stopped by {name}", STATUS_OK),
        )

    def _stop_gracefully(self, stop: Stop) -> None:
        """Stop the services and drain them, up to graceful_shutdown_timeout."""
        timeout = shutdown_timeout(self.conf)
        if timeout is not None:  # armed first: stop() itself may block
            self._watchdog = backend.os_thread(
                self._exit_stuck_stop, "stop-watchdog", timeout + STUCK_STOP_GRACE
            )
        self.stop()
        self._begin_drain(stop=stop)

    def _begin_drain(self, stop: Stop | None) -> None:
        """Wait for the stopped services' in-flight work, on a task, up to
        graceful_shutdown_timeout from now (a stop during a reload's drain
        keeps that drain's task)."""
        deadline = deadline_after(shutdown_timeout(self.conf))
        if self._drain is not None:
            self._drain.deadline, self._drain.stop = deadline, stop
            return
        self._drain = _Drain(deadline, stop)
        backend.spawn(self._wait_services, self._drain.done)

    def _exit_stuck_stop(self) -> None:
        """On a thread of its own, past the stop deadline: the loop could not
        end the stop (a service's code blocks it), so this ends the process."""
        LOG.error(
            "pid %d: still stopping %.0f s past graceful_shutdown_timeout=%ss: "
            "a service blocks; exiting with status 1",
            os.getpid(),
            STUCK_STOP_GRACE,
            self.conf.graceful_shutdown_timeout,
        )
        if self._parent_death_fd is None:
            pidfile.remove(self.conf.pid_file)
        accesslog.flush_at_exit()  # os._exit runs no atexit hook
        os._exit(STATUS_FAILED)

    def _wait_services(self, done) -> None:
        try:
            self.services.wait()
        finally:
            done.set()
            self._signals.nudge()

    def _end_drain(self) -> Stop | None:
        drain, self._drain = self._drain, None
        if not drain.finished:
            LOG.error(
                "in-flight work did not finish within graceful_shutdown_timeout=%ss",
                self.conf.graceful_shutdown_timeout,
            )
        if drain.stop is not None:
            if not drain.finished:
                drain.stop.status = STATUS_FAILED
            return drain.stop
        if not drain.finished:
            LOG.warning("restarting with work still in flight")
        self._apply_reload()
        return None

    def _stop_at_once(self, why: str) -> Stop:
        self.stop()
        return Stop(why, STATUS_FAILED)

    def _notify_ready_once(self) -> None:
        if self.services.all_started and not self._notified_ready:
            self._notified_ready = True
            if self._parent_death_fd is None:  # the top process
                tell_serving(self.services.services)
            upgrade.announce_ready(self.conf.pid_file)
            recycling.serving()  # in a forked worker: tell the parent


class ServiceLauncher(Launcher):
    """Runs services in the calling process."""


def check_service(service: object) -> None:
    if not isinstance(service, ServiceBase):
        raise TypeError(
            f"service must be a wsgisvc ServiceBase, got {type(service).__name__}"
        )


__all__ = ["Launcher", "ServiceBase", "ServiceLauncher", "Services"]
