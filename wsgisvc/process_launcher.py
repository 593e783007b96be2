"""ProcessLauncher: fork workers, supervise them, respawn them, stop them.

The parent does nothing but supervise. It sleeps in one loop that SIGCHLD,
SIGTERM, SIGINT and SIGHUP wake through the wakeup pipe, or a deadline (the next
respawn, the end of a graceful stop or of a replaced worker's drain), and acts
on the queued signals in order. Each worker watches the read end of a pipe whose
only writer is the parent, so it sees EOF, and exits, the moment the parent
dies, even by SIGKILL.

A stop signals the workers and sets the deadline first; the services' own
stop() in the parent (closing its copies of the listeners) then runs on a
thread of its own, so nothing a service does there can delay the SIGKILL.
"""

from __future__ import annotations

import atexit
import dataclasses
import gc
import logging as stdlib_logging
import os
import signal
import time

from oslo_config import cfg
from oslo_log import log as logging

from wsgisvc import (
    backend,
    config,
    errors,
    launcher,
    metrics,
    pidfile,
    proctitle,
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

# A worker that exits sooner than this after its fork counts as crashing at start.
MIN_HEALTHY_UPTIME = 1.0
# Respawn back-off for a slot whose worker keeps crashing: 1, 2, 4 ... 30 s.
RESPAWN_BACKOFF_START = 1.0
RESPAWN_BACKOFF_MAX = 30.0
# After SIGINT, workers get this long to stop before SIGKILL.
FAST_STOP_GRACE = 1.0
HANDLED_SIGNALS = (*launcher.HANDLED_SIGNALS, signal.SIGCHLD)


@dataclasses.dataclass
class WorkerSlot:
    """One of the ``workers`` places of a service, filled by one process at a time."""

    pid: int | None = None
    forked_at: float = 0.0
    crashes_in_a_row: int = 0
    respawn_at: float | None = 0.0  # None: nothing to do; otherwise when to fork
    serving: bool = False  # ``pid`` said its services started
    outgoing: int | None = None  # recycled out of this slot; serves until ``pid`` does
    # ``pid`` replaced a worker recycled for its memory: over the limit at its
    # first look too, the limit is below what a new worker needs
    replaced_for_memory: bool = False

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
    """A service and the worker slots the parent keeps filled for it.

    ``option``: the option its number of workers comes from, read again on
    each SIGHUP reload; None for a number given as such.
    """

    def __init__(
        self, service: launcher.ServiceBase, workers: int, option: str | None = None
    ) -> None:
        self.service = service
        self.option = option
        self.configured = workers  # what a SIGHUP reload goes back to
        self.workers = workers
        self.slots = [WorkerSlot() for _ in range(workers)]
        self.name = getattr(service, "name", None) or str(service)
        self.memory_limit_too_low = False  # recycling by memory off until a reload
        self.served = False  # a worker of it has started its service once
        self.cannot_start = 0  # workers that said so, before one served


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
        launcher.log_start(conf)  # before launch_service forks the first worker
        metrics.start_collector(conf)  # before any fork: the workers inherit it
        self.conf = conf
        self._config = config.Reloader(conf)
        self.wait_interval = wait_interval
        self.restart_method = restart_method
        self.wrappers: list[ServerWrapper] = []
        self.workers: dict[int, tuple[ServerWrapper, WorkerSlot]] = {}
        # Workers replaced on SIGHUP, draining: pid -> when they get SIGKILL.
        self.retiring: dict[int, float | None] = {}
        self._retired_why: dict[int, str] = {}  # "replaced" or "retired"
        self._reloading: set[int] = set()  # replaced by the reload in progress
        self._stop_deadline: float | None = None
        self._status = launcher.STATUS_OK
        self._stopping = False
        self._upgrade: upgrade.Upgrade | None = None  # SIGUSR1 in progress
        self._given_up: int | None = None  # its new parent, stopping with us
        # why the first workers of a service could not start: wait() raises it
        self._cannot_start: str | None = None
        upgrade.take_handover(conf.pid_file)
        # READY=1 still to be said, to systemd or to an upgrade's old parent
        self._ready_untold = bool(
            os.environ.get("NOTIFY_SOCKET") or upgrade.handing_over()
        )
        self._frozen = False  # gc.freeze() done, before the first fork
        self._death_read_fd, self._death_write_fd = os.pipe()
        self._from_workers = recycling.ParentChannel()
        self._watched: dict[int, watchdog.Watch] = {}  # pid -> its watch
        self._memory_check_at = time.monotonic()
        self._signals = signals.SignalHandler(HANDLED_SIGNALS)
        self._signals.install()
        report.add_section("Workers", self.describe_workers)

    def launch_service(
        self, service: launcher.ServiceBase, workers: int | str = 1
    ) -> None:
        """Run ``service`` in ``workers`` processes: a number, or the name of
        the option holding it (unset: the CPU count), which every SIGHUP
        reload reads again."""
        launcher.check_service(service)
        if isinstance(workers, str):
            wrapper = ServerWrapper(
                service, config.workers(self.conf, workers), workers
            )
        else:
            wrapper = ServerWrapper(service, workers)
        self.wrappers.append(wrapper)
        proctitle.parent([w.name for w in self.wrappers])
        for slot in wrapper.slots:
            self._fork(wrapper, slot)

    # --- the loop -------------------------------------------------------------

    def wait(self) -> int:
        """Supervise until every worker is gone after a stop; return the status.

        Raises StartupError, once everything stopped, when a service's first
        workers could not start it (an app loaded in each worker that does
        not load): the binary fails with that one line, as it would have had
        the app been loaded before the fork, instead of respawning forever.
        """
        launcher.tell_serving([wrapper.service for wrapper in self.wrappers])
        while not (
            self._stopping
            and not self.workers
            and not self.retiring
            and self._given_up is None
        ):
            self._signals.wait(self._sleep_time(), self._watched_fds())
            while (signo := self._signals.next()) is not None:
                self._handle_signal(signo)
            self._reap()
            self._hear_workers()
            self._watch_workers()
            self._check_memory()
            self._refill_slots()
            self._enforce_stop_deadline()
            self._kill_stale_retiring()
            self._tell_ready_once_all_serve()
            self._follow_upgrade()
        LOG.info("all workers stopped; exiting with status %d", self._status)
        pidfile.remove(self.conf.pid_file)
        if self._cannot_start is not None:
            raise errors.StartupError(self._cannot_start)
        return self._status

    def _watched_fds(self) -> tuple[int, ...]:
        upgrade_fds = () if self._upgrade is None else self._upgrade.fds()
        return (self._from_workers.fileno(), *upgrade_fds)

    def _tell_ready_once_all_serve(self) -> None:
        """READY=1 to systemd (to the old parent, in an upgrade's new one),
        once, when every slot of every service has a worker serving.

        Slots, not workers that said so: a worker that served, died and was
        respawned before its siblings served would be counted twice. A slot
        knows whether its worker serves from the line that worker sends
        (``_worker_serving``), heard before its exit is handled.
        """
        if not self._ready_untold:
            return
        if all(slot.serving for wrapper in self.wrappers for slot in wrapper.slots):
            upgrade.announce_ready(self.conf.pid_file)
            self._ready_untold = False  # said once; later respawns need no news

    def _sleep_time(self) -> float:
        deadlines = [
            slot.respawn_at
            for wrapper in self.wrappers
            for slot in wrapper.slots
            if slot.respawn_at is not None and not self._stopping
        ]
        if self._stop_deadline is not None:
            deadlines.append(self._stop_deadline)
        if self._upgrade is not None:
            deadlines.append(self._upgrade.deadline)
        deadlines += [at for at in self.retiring.values() if at is not None]
        deadlines += [
            at for watch in self._watched.values() if (at := watch.deadline())
        ]
        if self._memory_limited():
            deadlines.append(self._memory_check_at)
        if not deadlines:
            return self.wait_interval
        return min(min(deadlines) - time.monotonic(), self.wait_interval)

    def _handle_signal(self, signo: int) -> None:
        action = signals.action_for(signo)
        if action is Action.CHILD_EXITED:
            return  # _reap() runs after every wake-up
        pid, name = os.getpid(), signals.signal_name(signo)
        if action is Action.REPORT:
            report.write(self.conf)
        elif self._stopping and action is not Action.FAST_STOP:
            LOG.info("parent %d got %s while stopping: ignored", pid, name)
        elif self._upgrade is not None and action in upgrade.HELD_ACTIONS:
            LOG.info(
                "parent %d got %s during an upgrade: held until it ends", pid, name
            )
            self._upgrade.held.append(signo)
        elif action is Action.UPGRADE:
            self._begin_upgrade()
        elif action is Action.RELOAD:
            self.restart()
        elif action is Action.ADD_WORKER:
            for wrapper in self.wrappers:
                self._add_worker(wrapper)
        elif action is Action.RETIRE_WORKER:
            for wrapper in self.wrappers:
                self._retire_one(wrapper)
        elif action is Action.HANGUP:
            LOG.info("parent %d: terminal hung up (SIGHUP); stopping", pid)
            self._begin_stop(signal.SIGTERM, launcher.stop_grace(self.conf))
        elif action is Action.GRACEFUL_STOP:
            LOG.info("parent %d got %s: stopping gracefully", pid, name)
            self._begin_stop(signal.SIGTERM, launcher.stop_grace(self.conf))
        else:
            LOG.info("parent %d got %s: stopping at once", pid, name)
            self._status = launcher.STATUS_FAILED
            self._begin_stop(signal.SIGINT, FAST_STOP_GRACE)

    # --- workers --------------------------------------------------------------

    def _fork(self, wrapper: ServerWrapper, slot: WorkerSlot) -> None:
        slot.respawn_at = None
        slot.forked_at = time.monotonic()
        slot.serving = False
        if not self._frozen:
            _freeze_what_the_parent_built()
            self._frozen = True
        watch = watchdog.for_service(wrapper.service)
        pid, mask = signals.fork(HANDLED_SIGNALS)
        if pid == 0:
            status = self._run_worker(wrapper, slot, mask, watch)
            accesslog.flush_at_exit()  # os._exit runs no atexit hook
            os._exit(status)
        slot.pid = pid
        self.workers[pid] = (wrapper, slot)
        if watch is not None:
            watch.after_fork()
            self._watched[pid] = watch
        metrics.workers(len(self.workers))
        LOG.info("started worker %d for %s", pid, wrapper.service)

    def _run_worker(
        self,
        wrapper: ServerWrapper,
        slot: WorkerSlot,
        mask: set[int],
        watch: watchdog.Watch | None,
    ) -> int:
        """The whole life of a forked worker; returns its exit status.

        Called with the handled signals blocked (see ``signals.fork``): they
        are unblocked once the worker's own handlers are in place.

        A worker leaves through ``os._exit``: what the parent registered with
        ``atexit`` is the parent's to run (the metrics directory's removal,
        say). What the worker registers itself (an app loaded after the fork:
        glance drains its tasks so) runs when it ends, as in any process.
        """
        atexit._clear()  # the parent's exit handlers, inherited
        try:
            return self._serve_in_worker(wrapper, slot, mask, watch)
        finally:
            watchdog.disarm()  # exiting, not stuck, whatever its handlers do
            atexit._run_exitfuncs()  # the worker's own

    def _serve_in_worker(
        self,
        wrapper: ServerWrapper,
        slot: WorkerSlot,
        mask: set[int],
        watch: watchdog.Watch | None,
    ) -> int:
        try:
            proctitle.worker(
                wrapper.name, wrapper.slots.index(slot) + 1, len(wrapper.slots)
            )
            os.close(self._death_write_fd)
            self._from_workers.in_child()
            watchdog.forget_in_child(self._watched.values())  # its siblings'
            if watch is not None:
                watch.in_worker()
            self._signals.forget_in_child()
            metrics.forked()
            # systemd hears the parent, which speaks for its workers
            os.environ.pop("NOTIFY_SOCKET", None)
            backend.after_fork_in_child()
            _give_log_handlers_fresh_locks()
            worker = launcher.ServiceLauncher(
                self.conf,
                restart_method=self.restart_method,
                parent_death_fd=self._death_read_fd,
            )
            signals.unblock(mask)
            worker.launch_service(wrapper.service)
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
            self._hear_workers()  # what it said before it exited, while known
            self._worker_exited(pid, status)

    def _worker_exited(self, pid: int, status: int) -> None:
        how = _describe_exit(status)
        if self._upgrade is not None and pid == self._upgrade.pid:
            self._upgrade_failed(f"{how} before its workers served")
            return
        if pid == self._given_up:
            LOG.info("new parent %d of the given-up upgrade %s", pid, how)
            self._given_up = None
            return
        metrics.process_dead(pid)
        watch = self._watched.pop(pid, None)
        timed_out = watch is not None and watch.asked_at is not None
        if timed_out:
            LOG.error(
                "stacks of worker %d when it was found stuck, most recent call "
                "first:\n%s",
                pid,
                watch.stacks(),
            )
            stuck_for = watch.stuck_for + time.monotonic() - watch.asked_at
            how = (
                f"was ended: stuck for {stuck_for:.1f} s "
                f"({watch.option} = {watch.timeout:g})"
            )
        if watch is not None:
            watch.close()
        if pid in self.retiring:
            del self.retiring[pid]
            why = self._retired_why.pop(pid, "replaced")
            metrics.worker_exited(status, expected="timeout" if timed_out else why)
            LOG.info("%s worker %d %s", why, pid, how)
            self._reload_done_when_replaced(pid)
            return
        if pid not in self.workers:
            return
        wrapper, slot = self.workers.pop(pid)
        if slot.pid == pid:
            slot.pid, slot.serving = None, False
        else:  # being recycled: its slot has its replacement already
            slot.outgoing = None
        metrics.workers(len(self.workers))
        expected = "stopped" if self._stopping else None
        metrics.worker_exited(status, expected="timeout" if timed_out else expected)
        if self._stopping:
            LOG.info("worker %d %s", pid, how)
            if status != 0:
                self._status = launcher.STATUS_FAILED
            return
        if slot.pid is not None:
            LOG.warning(
                "worker %d %s before its replacement %d served", pid, how, slot.pid
            )
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
        """Pass ``signo`` on and set the deadline, then close our copies of the
        listeners on a thread of their own: the loop goes on meanwhile."""
        self._signal_all(signo, [*self.workers, *self.retiring])
        if self._upgrade is not None:
            self._give_up_upgrade()
        deadline = launcher.deadline_after(grace)
        if self._stop_deadline is None or (
            deadline is not None and deadline < self._stop_deadline
        ):
            self._stop_deadline = deadline
        if not self._stopping:
            self._stopping = True
            systemd.notify("STOPPING=1")
            backend.os_thread(self.stop_services, name="stop-services-in-parent")

    def stop_services(self) -> None:
        """Each service's stop() in the parent (it closes listening sockets)."""
        for wrapper in self.wrappers:
            try:
                wrapper.service.stop()
            except Exception:
                LOG.exception("%s failed to stop in the parent", wrapper.service)

    def stop(self) -> None:
        """Stop every worker gracefully; call wait() to see them go."""
        self._begin_stop(signal.SIGTERM, launcher.stop_grace(self.conf))

    def _enforce_stop_deadline(self) -> None:
        if self._stop_deadline is None or time.monotonic() < self._stop_deadline:
            return
        left = [*self.workers, *self.retiring]
        if self._given_up is not None:
            left.append(self._given_up)
        if left:
            LOG.error(
                "workers %s still running after the stop deadline; killing them",
                ", ".join(map(str, sorted(left))),
            )
            self._status = launcher.STATUS_FAILED
            self._signal_all(signal.SIGKILL, left)
        self._stop_deadline = None

    def restart(self) -> None:
        """SIGHUP. First the new configuration is checked whole: a broken one
        is refused in one line and changes nothing. reload: re-read config
        files, reset() the services, replace every worker (old ones drain,
        new ones take over the shared sockets), as many as each service's
        workers option now says; a replaced worker still running after
        graceful_shutdown_timeout gets SIGKILL. mutate: apply mutable options
        and pass SIGHUP on; workers keep their PIDs.
        """
        old = list(self.workers)
        mutate = self.restart_method == "mutate"
        if self._config.reload(mutate, check=self._check_workers) is None:
            return
        metrics.reloaded()
        if mutate:
            self._log_reload("mutating configuration; signalling", len(old))
            self._signal_all(signal.SIGHUP, self.workers)
            LOG.info("configuration reloaded (mutable options)")
            return
        self._log_reload("reloading configuration; replacing", len(old))
        for wrapper in self.wrappers:
            wrapper.service.reset()
            if wrapper.option is not None:
                wrapper.configured = config.workers(self.conf, wrapper.option)
            # back to the configured count, whatever SIGTTIN/SIGTTOU made it
            wrapper.workers = wrapper.configured
            wrapper.slots = [WorkerSlot() for _ in range(wrapper.configured)]
            wrapper.memory_limit_too_low = False  # the limit may be new too
        for pid in old:
            self._retire(pid, "replaced")
        self._reloading.update(old)
        self._refill_slots()
        self._reload_done_when_replaced(None)

    def _check_workers(self, conf: cfg.ConfigOpts) -> None:
        """Part of a reload's check: each service's workers option is usable."""
        for wrapper in self.wrappers:
            if wrapper.option is not None:
                config.workers(conf, wrapper.option)

    def _log_reload(self, what: str, workers: int) -> None:
        LOG.info(
            "parent %d got SIGHUP, not a terminal hang-up: %s %s",
            os.getpid(),
            what,
            _workers(workers),
        )

    def _reload_done_when_replaced(self, exited: int | None) -> None:
        if exited is not None and exited not in self._reloading:
            return
        self._reloading.discard(exited)
        if not self._reloading:
            LOG.info("configuration reloaded; %s running", _workers(len(self.workers)))

    def _retire(self, pid: int, why: str) -> None:
        """Let worker ``pid`` finish its work and exit (SIGTTOU, which a worker
        reads as "you are being replaced"); SIGKILL after the timeout."""
        self.workers.pop(pid, None)
        self.retiring[pid] = launcher.deadline_after(
            launcher.shutdown_timeout(self.conf)
        )
        self._retired_why[pid] = why
        self._signal_all(signal.SIGTTOU, [pid])
        metrics.workers(len(self.workers))

    def _add_worker(self, wrapper: ServerWrapper) -> None:
        """SIGTTIN: one more slot; the loop forks its worker right away."""
        wrapper.workers += 1
        wrapper.slots.append(WorkerSlot())
        LOG.info(
            "parent %d got SIGTTIN: %s now runs %s",
            os.getpid(),
            wrapper.name,
            _workers(wrapper.workers),
        )

    def _retire_one(self, wrapper: ServerWrapper) -> None:
        """SIGTTOU: one slot fewer, never below one; its worker drains."""
        if wrapper.workers <= 1:
            LOG.info(
                "parent %d got SIGTTOU: %s stays at 1 worker", os.getpid(), wrapper.name
            )
            return
        wrapper.workers -= 1
        slot = wrapper.slots.pop()
        retiring = f"; retiring worker {slot.pid}" if slot.pid else ""
        LOG.info(
            "parent %d got SIGTTOU: %s now runs %s%s",
            os.getpid(),
            wrapper.name,
            _workers(wrapper.workers),
            retiring,
        )
        for pid in (slot.pid, slot.outgoing):
            if pid is not None:
                self._retire(pid, "retired")

    # --- stuck workers (see wsgisvc.watchdog) ----------------------------------

    def _watch_workers(self) -> None:
        """A worker whose loop stopped turning is asked for its stacks, and
        ended once it wrote them (``_stacks_written``); past DUMP_GRACE
        without them (its stuck code holds the GIL) it writes them from C
        and ends (``DUMP_SIGNAL``); past another, SIGKILL."""
        now = time.monotonic()
        for pid, watch in list(self._watched.items()):
            if watch.killed:
                continue
            if watch.signalled_at is not None:
                if now >= watch.signalled_at + watchdog.DUMP_GRACE:
                    self._kill_stuck(pid, watch)
                continue
            if watch.asked_at is not None:
                if now >= watch.asked_at + watchdog.DUMP_GRACE:
                    watch.dump_and_exit(pid)
                continue
            stale = watch.stale(now)
            if stale is None or stale < watch.timeout:
                continue
            LOG.error(
                "worker %d of %s has not turned its loop for %.1f s (%s = %g): "
                "writing its stacks, then ending it",
                pid,
                watch.name,
                stale,
                watch.option,
                watch.timeout,
            )
            watch.ask_for_stacks(stale)

    def _stacks_written(self, pid: int) -> None:
        watch = self._watched.get(pid)
        if watch is not None and watch.asked_at is not None:
            self._kill_stuck(pid, watch)

    def _kill_stuck(self, pid: int, watch: watchdog.Watch) -> None:
        if not watch.killed:
            watch.killed = True
            self._signal_all(signal.SIGKILL, [pid])

    # --- recycling ------------------------------------------------------------

    def _hear_workers(self) -> None:
        """Act on what the workers said: ``serving``, ``recycle``,
        ``cannot-start``, ``stacks-written``."""
        for pid, event, detail in self._from_workers.read():
            if event == "serving":
                self._worker_serving(pid)
            elif event == "stacks-written":
                self._stacks_written(pid)
            elif event == "recycle":
                self._recycle(pid, detail)
            elif event == "cannot-start":
                self._worker_cannot_start(pid, detail)

    def _memory_limited(self) -> bool:
        return any(
            w.service.recycling.max_rss_mib and not w.memory_limit_too_low
            for w in self.wrappers
        )

    def _check_memory(self) -> None:
        """About once a second, recycle the workers over their memory limit."""
        now = time.monotonic()
        if now < self._memory_check_at or not self._memory_limited():
            return
        self._memory_check_at = now + recycling.RSS_CHECK_INTERVAL
        for pid, (wrapper, slot) in list(self.workers.items()):
            if wrapper.memory_limit_too_low:
                continue
            if slot.pid == pid and slot.outgoing is None:
                why = recycling.over_memory(pid, wrapper.service.recycling)
                if why is None:
                    slot.replaced_for_memory = False
                elif slot.replaced_for_memory:
                    self._stop_recycling_by_memory(wrapper, pid, why)
                else:
                    slot.replaced_for_memory = True  # what _recycle forks into it
                    self._recycle(pid, why)

    def _stop_recycling_by_memory(
        self, wrapper: ServerWrapper, pid: int, why: str
    ) -> None:
        """A worker that replaced one over the limit is over it as soon as it
        serves: recycling cannot help, and going on would fork a worker per
        slot and per second for good. Off for this service until a reload."""
        wrapper.memory_limit_too_low = True
        LOG.warning(
            "worker %d of %s, which replaced one over its memory limit, is over "
            "it too as soon as it serves (%s): the limit is below what a new "
            "worker needs; no more recycling by memory until a reload",
            pid,
            wrapper.name,
            why,
        )

    def _recycle(self, pid: int, why: str) -> None:
        """Fork the successor of worker ``pid`` into its slot now; ``pid``
        serves on until the successor serves (_worker_serving), so the
        service never has fewer workers serving than configured."""
        found = self.workers.get(pid)
        if self._stopping or found is None:
            return
        wrapper, slot = found
        if slot.pid != pid or slot.outgoing is not None:
            return  # already on its way out
        LOG.info(
            "recycling worker %d of %s: %s; its replacement starts first",
            pid,
            wrapper.name,
            why,
        )
        slot.outgoing = pid
        self._fork(wrapper, slot)

    def _worker_serving(self, pid: int) -> None:
        found = self.workers.get(pid)
        if found is None or found[1].pid != pid:
            return
        wrapper, slot = found
        slot.serving = True
        wrapper.served = True
        LOG.debug("worker %d of %s serving", pid, wrapper.name)
        if slot.outgoing is not None:
            old, slot.outgoing = slot.outgoing, None
            LOG.info(
                "worker %d of %s serves in place of worker %d, which now finishes "
                "its requests and exits (recycled)",
                pid,
                wrapper.name,
                old,
            )
            self._retire(old, "recycled")

    def _worker_cannot_start(self, pid: int, why: str) -> None:
        """A worker's service failed to start, with one line why. Its slot is
        refilled as after any crash (with back-off), unless as many workers as
        the service has slots failed before one served: then nothing will
        (an app that cannot load), so stop, and wait() raises ``why``."""
        found = self.workers.get(pid)
        if found is None or found[0].served or self._cannot_start is not None:
            return
        wrapper = found[0]
        wrapper.cannot_start += 1
        if wrapper.cannot_start < wrapper.workers:
            return
        LOG.error(
            "%d workers of %s could not start it, and none has: stopping",
            wrapper.cannot_start,
            wrapper.name,
        )
        self._cannot_start = why
        self._status = launcher.STATUS_FAILED
        self._begin_stop(signal.SIGTERM, launcher.stop_grace(self.conf))

    # --- upgrade (SIGUSR1; see wsgisvc.upgrade) ----------------------------

    def _begin_upgrade(self) -> None:
        """Start the binary anew on our listening sockets; the loop follows it."""
        if self._upgrade is not None:
            LOG.info(
                "parent %d got SIGUSR1: already upgrading to %d; ignored",
                os.getpid(),
                self._upgrade.pid,
            )
            return
        sockets = {
            name: sock
            for wrapper in self.wrappers
            for name, sock in wrapper.service.listening_sockets().items()
        }
        self._upgrade = upgrade.start(
            sockets, HANDLED_SIGNALS, self._signals.forget_in_child
        )
        LOG.info(
            "parent %d got SIGUSR1: upgrading; new parent %d started on %s",
            os.getpid(),
            self._upgrade.pid,
            ", ".join(sockets) or "no listening sockets",
        )

    def _follow_upgrade(self) -> None:
        if self._upgrade is None:
            return
        if self._upgrade.ready():
            self._hand_over()
        elif self._upgrade.timed_out():
            upgrade.terminate(self._upgrade.pid)
            self._upgrade_failed(
                f"did not serve within {upgrade.UPGRADE_TIMEOUT:.0f} s; stopped it"
            )

    def _hand_over(self) -> None:
        """The new parent serves: it is the service now; we stop and exit."""
        new = self._upgrade.pid
        systemd.notify(f"MAINPID={new}\nREADY=1")
        os.environ.pop("NOTIFY_SOCKET", None)  # no STOPPING=1 for the new one
        LOG.info(
            "upgrade: new parent %d serves; parent %d stops its workers and exits",
            new,
            os.getpid(),
        )
        self._end_upgrade()
        self._begin_stop(signal.SIGTERM, launcher.shutdown_timeout(self.conf))

    def _give_up_upgrade(self) -> None:
        """This parent stops while its new parent starts: the new one gets
        SIGTERM (SIGINT would be a traceback from a binary still importing;
        a fast stop's short deadline bounds it anyway) and is waited for like
        a worker. No process of its generation outlives the service, where a
        service manager's final kill of what is left would cut the requests
        its workers took."""
        pid = self._upgrade.pid
        LOG.info(
            "upgrade given up: parent %d stops, and its new parent %d with it",
            os.getpid(),
            pid,
        )
        upgrade.terminate(pid)
        self._upgrade.held.clear()  # nobody is left to act on them
        self._end_upgrade()
        self._given_up = pid

    def _upgrade_failed(self, why: str) -> None:
        LOG.error(
            "upgrade failed: new parent %d %s; parent %d serves on",
            self._upgrade.pid,
            why,
            os.getpid(),
        )
        self._end_upgrade()

    def _end_upgrade(self) -> None:
        """Act on the signals held meanwhile, in their order, before newer ones."""
        ended, self._upgrade = self._upgrade, None
        ended.close()
        self._signals.queue.extendleft(reversed(ended.held))

    def describe_workers(self) -> str:
        """The report's section: each service's workers, and those draining."""
        lines = [
            f"{w.name}: {w.workers} of {w.configured} configured; pids "
            + ", ".join(_describe_slot(s) for s in w.slots)
            for w in self.wrappers
        ]
        lines += [
            f"draining: {pid} ({self._retired_why.get(pid)})" for pid in self.retiring
        ]
        return "\n".join(lines)

    def _kill_stale_retiring(self) -> None:
        now = time.monotonic()
        stale = [
            pid for pid, at in self.retiring.items() if at is not None and at <= now
        ]
        if stale:
            LOG.error("replaced workers %s did not drain in time; killing them", stale)
            self._signal_all(signal.SIGKILL, stale)
            for pid in stale:
                self.retiring[pid] = None  # killed; reaped by _reap()


def _freeze_what_the_parent_built() -> None:
    """Move what the parent built (the app, the config, imported modules) out
    of the collector's sight, before its first fork: a worker's full
    collections stay short and leave those pages shared with the parent
    (copy-on-write); workers forked later inherit the same frozen objects.

    Once, after a collection: start-up garbage is collected rather than kept
    for good, and what the parent makes while it supervises (a reload's
    configuration, respawns, upgrades) stays collectable. Freezing again at
    each fork kept whatever cyclic garbage the parent held at that moment for
    good, one more batch per respawn or recycled worker.
    """
    gc.collect()
    gc.freeze()


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


def _describe_slot(slot: WorkerSlot) -> str:
    if slot.pid is None:
        return "(respawning)"
    state = "" if slot.serving else " (starting)"
    recycled = f" (replacing {slot.outgoing})" if slot.outgoing else ""
    return f"{slot.pid}{state}{recycled}"


def _workers(count: int) -> str:
    return f"{count} worker" if count == 1 else f"{count} workers"


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signals.signal_name(os.WTERMSIG(status))}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


__all__ = ["ProcessLauncher", "ServerWrapper"]
