"""ProcessLauncher: fork workers, supervise them, respawn them, stop them.

The parent does nothing but supervise. It sleeps in one loop that SIGCHLD,
SIGTERM, SIGINT and SIGHUP wake through the wakeup pipe, or a deadline (the next
respawn, the end of a graceful stop). Each worker watches the read end of a pipe
whose only writer is the parent, so it sees EOF, and exits, the moment the
parent dies, even by SIGKILL.
"""

from __future__ import annotations

import dataclasses
import gc
import logging as stdlib_logging
import os
import signal
import time

import eventlet.hubs
from oslo_config import cfg
from oslo_log import log as logging

from wsgisvc import launcher, metrics, signals, systemd
from wsgisvc.signals import Action

LOG = logging.getLogger(__name__)

# A worker that exits sooner than this after its fork counts as crashing at start.
MIN_HEALTHY_UPTIME = 1.0
# Respawn back-off for a slot whose worker keeps crashing: 1, 2, 4 ... 30 s.
RESPAWN_BACKOFF_START = 1.0
RESPAWN_BACKOFF_MAX = 30.0
# After SIGINT, workers get this long to stop before SIGKILL.
FAST_STOP_GRACE = 1.0


@dataclasses.dataclass
class WorkerSlot:
    """One of the ``workers`` places of a service, filled by one process at a time."""

    pid: int | None = None
    forked_at: float = 0.0
    crashes_in_a_row: int = 0
    respawn_at: float | None = 0.0  # None: nothing to do; otherwise when to fork

    def respawn_backoff(self, now: float) -> float:
        """Seconds to wait before refilling this slot after its worker exited."""
        if now - self.forked_at >= MIN_HEALTHY_UPTIME:
            self.crashes_in_a_row = 0
            return 0.0
        self.crashes_in_a_row += 1
        return min(
            RESPAWN_BACKOFF_START * 2 ** (self.crashes_in_a_row - 1),
            RESPAWN_BACKOFF_MAX,
        )


class ServerWrapper:
    """A service and the worker slots the parent keeps filled for it."""

    def __init__(self, service: launcher.ServiceBase, workers: int) -> None:
        self.service = service
        self.workers = workers
        self.slots = [WorkerSlot() for _ in range(workers)]


class ProcessLauncher:
    """Runs each service in ``workers`` forked processes and supervises them."""

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        wait_interval: float = 5.0,
        restart_method: str = "reload",
    ) -> None:
        """``wait_interval`` bounds how long the idle loop sleeps between
        checks; signals wake it earlier, so it is only a safety net."""
        if restart_method not in ("reload", "mutate"):
            raise ValueError(
                f"restart_method must be 'reload' or 'mutate', got {restart_method!r}"
            )
        launcher.register_opts(conf)
        metrics.start_collector(conf)  # before any fork: the workers inherit it
        self.conf = conf
        self.wait_interval = wait_interval
        self.restart_method = restart_method
        self.wrappers: list[ServerWrapper] = []
        self.workers: dict[int, tuple[ServerWrapper, WorkerSlot]] = {}
        self.retiring: set[int] = set()  # replaced on SIGHUP, draining
        self._stop_deadline: float | None = None
        self._status = launcher.STATUS_OK
        self._stopping = False
        self._readiness = (
            systemd.ReadinessRelay() if os.environ.get("NOTIFY_SOCKET") else None
        )
        self._death_read_fd, self._death_write_fd = os.pipe()
        self._signals = signals.SignalHandler(
            (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
        )
        self._signals.install()

    def launch_service(self, service: launcher.ServiceBase, workers: int = 1) -> None:
        launcher.check_service(service)
        wrapper = ServerWrapper(service, workers)
        self.wrappers.append(wrapper)
        for slot in wrapper.slots:
            self._fork(wrapper, slot)

    # --- the loop -------------------------------------------------------------

    def wait(self) -> int:
        """Supervise until every worker is gone after a stop; return the status."""
        launcher.log_start(self.conf)
        while not (self._stopping and not self.workers and not self.retiring):
            received, _ = self._signals.wait(self._sleep_time(), self._watched_fds())
            for signo in received:
                self._handle_signal(signo)
            self._reap()
            self._refill_slots()
            self._enforce_stop_deadline()
            self._relay_readiness()
        LOG.info("all workers stopped; exiting with status %d", self._status)
        return self._status

    def _watched_fds(self) -> tuple[int, ...]:
        return () if self._readiness is None else (self._readiness.fileno(),)

    def _relay_readiness(self) -> None:
        """READY=1 to systemd once every first worker has started its service."""
        if self._readiness is None:
            return
        self._readiness.collect()
        expected = sum(wrapper.workers for wrapper in self.wrappers)
        if self._readiness.ready_count >= expected:
            systemd.notify("READY=1")
            self._readiness = None  # said once; later respawns need no news

    def _sleep_time(self) -> float:
        deadlines = [
            slot.respawn_at
            for wrapper in self.wrappers
            for slot in wrapper.slots
            if slot.respawn_at is not None and not self._stopping
        ]
        if self._stop_deadline is not None:
            deadlines.append(self._stop_deadline)
        if not deadlines:
            return self.wait_interval
        return min(min(deadlines) - time.monotonic(), self.wait_interval)

    def _handle_signal(self, signo: int) -> None:
        action = signals.action_for(signo)
        if action is Action.CHILD_EXITED:
            return  # _reap() runs after every wake-up
        LOG.info("parent %d got %s", os.getpid(), signals.signal_name(signo))
        if action is Action.RESTART:
            self.restart()
        elif action is Action.GRACEFUL_STOP:
            self._begin_stop(signal.SIGTERM, launcher.shutdown_timeout(self.conf))
        else:
            self._status = launcher.STATUS_FAILED
            self._begin_stop(signal.SIGINT, FAST_STOP_GRACE)

    # --- workers --------------------------------------------------------------

    def _fork(self, wrapper: ServerWrapper, slot: WorkerSlot) -> None:
        slot.respawn_at = None
        slot.forked_at = time.monotonic()
        # What the parent built (the app, the config, imported modules) is never
        # garbage: out of the collector's sight, a worker's full collections stay
        # short and leave those pages shared with the parent (copy-on-write).
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            os._exit(self._run_worker(wrapper.service))
        slot.pid = pid
        self.workers[pid] = (wrapper, slot)
        metrics.workers(len(self.workers))
        LOG.info("started worker %d for %s", pid, wrapper.service)

    def _run_worker(self, service: launcher.ServiceBase) -> int:
        """The whole life of a forked worker; returns its exit status."""
        try:
            os.close(self._death_write_fd)
            metrics.forked()
            self._signals.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            if self._readiness is not None:  # tell the parent, not systemd
                os.environ["NOTIFY_SOCKET"] = self._readiness.address
            else:
                os.environ.pop("NOTIFY_SOCKET", None)
            eventlet.hubs.use_hub()  # a fresh hub: never share the parent's epoll
            _give_log_handlers_fresh_locks()
            worker = launcher.ServiceLauncher(
                self.conf,
                restart_method=self.restart_method,
                parent_death_fd=self._death_read_fd,
            )
            worker.launch_service(service)
            return worker.wait()
        except BaseException:
            LOG.exception("worker %d failed", os.getpid())
            return launcher.STATUS_FAILED

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._worker_exited(pid, status)

    def _worker_exited(self, pid: int, status: int) -> None:
        how = _describe_exit(status)
        metrics.process_dead(pid)
        if pid in self.retiring:
            self.retiring.discard(pid)
            metrics.worker_exited(status, expected="replaced")
            LOG.info("replaced worker %d %s", pid, how)
            return
        if pid not in self.workers:
            return
        wrapper, slot = self.workers.pop(pid)
        slot.pid = None
        metrics.workers(len(self.workers))
        metrics.worker_exited(status, expected="stopped" if self._stopping else None)
        if self._stopping:
            LOG.info("worker %d %s", pid, how)
            if status != 0:
                self._status = launcher.STATUS_FAILED
            return
        now = time.monotonic()
        backoff = slot.respawn_backoff(now)
        slot.respawn_at = now + backoff
        LOG.warning("worker %d %s; respawning in %.1f s", pid, how, backoff)

    def _refill_slots(self) -> None:
        if self._stopping:
            return
        now = time.monotonic()
        for wrapper in self.wrappers:
            for slot in wrapper.slots:
                if slot.pid is None and slot.respawn_at is not None:
                    if slot.respawn_at <= now:
                        self._fork(wrapper, slot)

    def _signal_all(self, signo: int, pids) -> None:
        for pid in list(pids):
            try:
                os.kill(pid, signo)
            except ProcessLookupError:
                pass

    # --- stop and restart -----------------------------------------------------

    def _begin_stop(self, signo: int, grace: float | None) -> None:
        """Close our copies of the listeners, pass ``signo`` on, set a deadline."""
        if not self._stopping:
            systemd.notify("STOPPING=1")
            self.stop_services()
        self._stopping = True
        self._signal_all(signo, [*self.workers, *self.retiring])
        deadline = None if grace is None else time.monotonic() + grace
        if self._stop_deadline is None or (
            deadline is not None and deadline < self._stop_deadline
        ):
            self._stop_deadline = deadline

    def stop_services(self) -> None:
        for wrapper in self.wrappers:
            try:
                wrapper.service.stop()
            except Exception:
                LOG.exception("%s failed to stop in the parent", wrapper.service)

    def stop(self) -> None:
        """Stop every worker gracefully; call wait() to see them go."""
        self._begin_stop(signal.SIGTERM, launcher.shutdown_timeout(self.conf))

    def _enforce_stop_deadline(self) -> None:
        if self._stop_deadline is None or time.monotonic() < self._stop_deadline:
            return
        left = [*self.workers, *self.retiring]
        if left:
            LOG.error(
                "workers %s still running after the stop deadline; killing them",
                ", ".join(map(str, sorted(left))),
            )
            self._status = launcher.STATUS_FAILED
            self._signal_all(signal.SIGKILL, left)
        self._stop_deadline = None

    def restart(self) -> None:
        """SIGHUP. reload: re-read config files, reset() the services, replace
        every worker (old ones drain, new ones take over the shared sockets).
        mutate: apply mutable options and pass SIGHUP on; workers keep their PIDs.
        """
        if self.restart_method == "mutate":
            self.conf.mutate_config_files()
            self._signal_all(signal.SIGHUP, self.workers)
            return
        self.conf.reload_config_files()
        metrics.reloaded()
        for wrapper in self.wrappers:
            wrapper.service.reset()
        old = list(self.workers)
        for pid in old:
            _, slot = self.workers.pop(pid)
            slot.pid = None
            slot.respawn_at = time.monotonic()
            self.retiring.add(pid)
        self._signal_all(signal.SIGTERM, old)
        self._refill_slots()
        self._watch_retiring(old)

    def _watch_retiring(self, pids: list[int]) -> None:
        """Replaced workers that outlive graceful_shutdown_timeout get SIGKILL."""
        timeout = launcher.shutdown_timeout(self.conf)
        if timeout is None:
            return

        def kill_stragglers():
            stragglers = [pid for pid in pids if pid in self.retiring]
            if stragglers:
                LOG.error("replaced workers %s did not drain in time", stragglers)
                self._signal_all(signal.SIGKILL, stragglers)

        eventlet.spawn_after(timeout, kill_stragglers)


def _give_log_handlers_fresh_locks() -> None:
    """Replace, in a new worker, every log handler's lock inherited from the parent.

    Under eventlet, oslo.log gives each handler a mutex made of a pipe holding
    one token byte. Inherited across fork it would be one mutex shared by the
    parent and every worker: workers would queue for each other's log lines,
    and a process killed while writing one (the parent by SIGKILL, say) would
    keep the token forever and hang every sibling at its next log line.
    """
    manager = stdlib_logging.Logger.manager
    loggers = [stdlib_logging.getLogger(), *manager.loggerDict.values()]
    handlers = {
        handler
        for logger in loggers
        if isinstance(logger, stdlib_logging.Logger)
        for handler in logger.handlers
    }
    for handler in handlers:
        handler.createLock()


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signals.signal_name(os.WTERMSIG(status))}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
