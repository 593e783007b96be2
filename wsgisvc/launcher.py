"""Launchers that run services in this process.

``ServiceLauncher`` runs its services on eventlet greenthreads in the calling
process; each worker a ``ProcessLauncher`` forks (``process_launcher``) runs one
too. The loop sleeps until a signal, a nudge from a service or the parent's
death wakes it (see ``signals``); it never polls.
"""

from __future__ import annotations

import abc
import os
import signal
import time
from typing import NoReturn

import eventlet
from oslo_config import cfg
from oslo_log import log as logging

from wsgisvc import metrics, opts, signals, systemd
from wsgisvc.signals import Action, SignalExit

LOG = logging.getLogger(__name__)

STATUS_OK = 0
STATUS_FAILED = 1


class ServiceBase(abc.ABC):
    """What a launcher runs.

    ``start()`` spawns greenthreads and returns; it may be called again after
    ``stop()`` and ``wait()`` (a SIGHUP restart in a single process).
    ``stop()`` stops taking new work; it is also called in a ProcessLauncher's
    parent, where ``start()`` never ran, to close listening sockets early.
    ``wait()`` returns once in-flight work is done. ``reset()`` runs on SIGHUP.
    """

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def wait(self) -> None: ...

    @abc.abstractmethod
    def reset(self) -> None: ...


class Services:
    """The services of one process, started on greenthreads.

    ``on_change`` is called when a service finished starting or failed to, so
    the launcher's loop can look again.
    """

    def __init__(self, on_change) -> None:
        self.services: list[ServiceBase] = []
        self.failed: list[tuple[ServiceBase, BaseException]] = []
        self._starting = 0
        self._stopped = False
        self._on_change = on_change

    @property
    def all_started(self) -> bool:
        return self._starting == 0 and not self.failed

    def add(self, service: ServiceBase) -> None:
        self.services.append(service)
        self._spawn_start(service)

    def _spawn_start(self, service: ServiceBase) -> None:
        self._starting += 1
        eventlet.spawn(self._start, service)

    def _start(self, service: ServiceBase) -> None:
        try:
            service.start()
        except BaseException as exc:
            LOG.exception("%s failed to start", service)
            self.failed.append((service, exc))
        finally:
            self._starting -= 1
            self._on_change()

    def stop(self) -> None:
        """Call each service's stop() once, however often this is called."""
        if self._stopped:
            return
        self._stopped = True
        for service in self.services:
            try:
                service.stop()
            except Exception:
                LOG.exception("%s failed to stop", service)

    def wait(self) -> None:
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
        self._stopped = False
        for service in self.services:
            self._spawn_start(service)


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(opts.launcher_opts)


def log_start(conf: cfg.ConfigOpts) -> None:
    """What every launcher says once when it starts."""
    LOG.info(
        "pid %d: running on eventlet %s (in maintenance mode; see "
        "doc/source/eventlet.rst)",
        os.getpid(),
        eventlet.__version__,
    )
    if conf.log_options:
        conf.log_opt_values(LOG, logging.DEBUG)


def shutdown_timeout(conf: cfg.ConfigOpts) -> float | None:
    """graceful_shutdown_timeout as a select() timeout: None when it is 0."""
    return conf.graceful_shutdown_timeout or None


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
        if parent_death_fd is None:  # the top process: it serves its own metrics
            metrics.start_collector(conf)
        self.conf = conf
        self.restart_method = restart_method
        self._parent_death_fd = parent_death_fd
        self._signals = signals.SignalHandler(
            (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        )
        self._signals.install()
        self.services = Services(on_change=self._signals.nudge)
        self._notified_ready = False

    def launch_service(self, service: ServiceBase, workers: int | None = 1) -> None:
        if workers is not None and workers != 1:
            raise ValueError(f"{type(self).__name__} runs one worker, got {workers}")
        check_service(service)
        self.services.add(service)

    def stop(self) -> None:
        systemd.notify("STOPPING=1")
        self.services.stop()

    def restart(self) -> None:
        """SIGHUP: reload re-reads the files and restarts every service; mutate
        applies mutable options in place and only resets the services."""
        if self.restart_method == "reload":
            self.conf.reload_config_files()
            metrics.reloaded()
            self.services.stop()
            if not self._drain():
                LOG.warning("restarting with work still in flight")
            self.services.start_again()
        else:
            self.conf.mutate_config_files()
            self.services.reset()

    def wait(self) -> int:
        """Run until a signal stops the services; return the exit status."""
        if self._parent_death_fd is None:  # a forked worker: the parent said it
            log_start(self.conf)
        try:
            self._run_until_stop_signal()
        except SignalExit as exc:
            LOG.info("pid %d got %s", os.getpid(), signals.signal_name(exc.signo))
            if signals.action_for(exc.signo) is Action.FAST_STOP:
                self.stop()
                return STATUS_FAILED
            return self._stop_gracefully()
        except _ParentDied:
            LOG.warning("pid %d: parent process died; stopping at once", os.getpid())
            self.stop()
            return STATUS_FAILED
        except _StartFailed:
            self.stop()
            return STATUS_FAILED

    def _wait_for_signal(self, timeout: float | None = None) -> list[int]:
        """Sleep until signals arrive or ``timeout``; raise _ParentDied."""
        watch = () if self._parent_death_fd is None else (self._parent_death_fd,)
        received, ready_fds = self._signals.wait(timeout, watch)
        if ready_fds:
            raise _ParentDied()
        return received

    def _run_until_stop_signal(self) -> NoReturn:
        while True:
            self._check_services()
            for signo in self._wait_for_signal():
                if signals.action_for(signo) is Action.RESTART:
                    LOG.info("pid %d got SIGHUP: %s", os.getpid(), self.restart_method)
                    self.restart()
                else:
                    raise SignalExit(signo)

    def _check_services(self) -> None:
        if self.services.failed:
            raise _StartFailed()
        if self.services.all_started and not self._notified_ready:
            self._notified_ready = True
            systemd.notify("READY=1")

    def _stop_gracefully(self) -> int:
        self.stop()
        try:
            return STATUS_OK if self._drain() else STATUS_FAILED
        except SignalExit:
            LOG.warning("SIGINT during graceful stop: stopping at once")
            return STATUS_FAILED

    def _drain(self) -> bool:
        """Wait for stopped services' in-flight work, up to
        graceful_shutdown_timeout; False when it ran out.

        A SIGINT cuts the wait short (SignalExit); the parent's death too.
        """
        waiter = eventlet.spawn(self.services.wait)
        waiter.link(lambda _: self._signals.nudge())
        timeout = shutdown_timeout(self.conf)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not waiter.dead:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                LOG.error(
                    "in-flight work did not finish within "
                    "graceful_shutdown_timeout=%ss",
                    timeout,
                )
                return False
            if signal.SIGINT in self._wait_for_signal(remaining):
                raise SignalExit(signal.SIGINT)
        return True


class ServiceLauncher(Launcher):
    """Runs services in the calling process."""


class _ParentDied(Exception):
    pass


class _StartFailed(Exception):
    pass


def check_service(service: object) -> None:
    if not isinstance(service, ServiceBase):
        raise TypeError(
            f"service must be a wsgisvc ServiceBase, got {type(service).__name__}"
        )
