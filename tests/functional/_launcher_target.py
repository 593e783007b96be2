"""A service binary for the launcher tests; it records what happens to it.

Each event is one line ``PID EVENT VALUE`` appended to [target] events_file, so
a test can see which process started, reset, stopped and finished (and, on
SIGUSR2, whether garbage the top process made after its first fork was freed).

    python _launcher_target.py --config-file F
"""

import wsgisvc.cmd  # noqa: F401, I001  (backend, and monkey patching on eventlet)

import gc
import os
import sys
import time
import weakref

from oslo_config import cfg

from wsgisvc import backend, config, report, service

target_opts = [
    cfg.StrOpt("events_file", required=True),
    cfg.StrOpt("greeting", default="hello", mutable=True),
    cfg.FloatOpt("stop_delay", default=0.0, help="wait() lasts this long"),
    cfg.BoolOpt("raise_at_start", default=False),
    cfg.IntOpt("exit_at_start", help="os._exit(N) in start()"),
    cfg.StrOpt(
        "start_gate",
        help="a directory: start() records 'starting', then waits for a file "
        "named after its pid there",
    ),
    cfg.BoolOpt(
        "block_in_stop",
        default=False,
        help="stop() and wait() block in an unpatched sleep of an hour",
    ),
    cfg.IntOpt("workers"),
    cfg.StrOpt("restart_method", default="reload"),
]


def record(conf, event: str, value: object = "-") -> None:
    line = f"{os.getpid()} {event} {value}\n".encode()
    fd = os.open(conf.target.events_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class RecordingService(service.ServiceBase):
    def __init__(self, conf):
        self.conf = conf

    def start(self):
        target = self.conf.target
        if target.exit_at_start is not None:
            os._exit(target.exit_at_start)
        if target.raise_at_start:
            raise RuntimeError("start failed on purpose")
        if target.start_gate:
            record(self.conf, "starting")
            while not os.path.exists(os.path.join(target.start_gate, str(os.getpid()))):
                backend.sleep(0.01)
        record(self.conf, "start", target.greeting)

    def stop(self):
        record(self.conf, "stop")
        if self.conf.target.block_in_stop:
            unpatched_sleep(3600)

    def wait(self):
        record(self.conf, "wait-begin")
        if self.conf.target.block_in_stop:
            unpatched_sleep(3600)
        backend.sleep(self.conf.target.stop_delay)
        record(self.conf, "wait-end")

    def reset(self):
        record(self.conf, "reset", self.conf.target.greeting)

    def serving(self):
        """In the top process, after a ProcessLauncher's first forks: a
        reference cycle dropped here must stay collectable whatever the parent
        forks later. A report (SIGUSR2) records whether a collection freed it."""
        cycle = _Cycle()
        cycle.itself = cycle
        garbage_after_first_fork.append(weakref.ref(cycle))
        report.add_section("target gc", self._collect)

    def _collect(self) -> str:
        gc.collect()
        freed = all(ref() is None for ref in garbage_after_first_fork)
        record(self.conf, "gc", "collected" if freed else "kept")
        return f"freeze count {gc.get_freeze_count()}"


class _Cycle:
    itself: object = None


garbage_after_first_fork: list[weakref.ref] = []


def unpatched_sleep(seconds: float) -> None:
    """A blocking call no scheduler can preempt: it holds the calling thread."""
    if backend.NAME == "eventlet":
        from eventlet import patcher

        patcher.original("time").sleep(seconds)
    else:
        time.sleep(seconds)


def main():
    conf = config.CONF
    conf.register_opts(target_opts, group="target")
    config.parse_args(sys.argv)
    launcher = service.launch(
        conf,
        RecordingService(conf),
        workers=conf.target.workers,
        restart_method=conf.target.restart_method,
    )
    record(conf, "launcher", type(launcher).__name__)
    sys.exit(launcher.wait())


if __name__ == "__main__":
    main()
