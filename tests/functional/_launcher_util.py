"""Run _launcher_target.py as a real process tree and read what it recorded."""

from __future__ import annotations

import os
import pathlib
import signal
import time

from tests.helpers import PYTHON, alive, children, kill_group, spawn, wait_for

TARGET = pathlib.Path(__file__).with_name("_launcher_target.py")


class Target:
    """One launcher process tree, its config file, its events and its log."""

    def __init__(self, tmp_path: pathlib.Path, backend: str = "eventlet") -> None:
        self.backend = backend
        self.dir = tmp_path
        self.conf_file = tmp_path / "target.conf"
        self.events_file = tmp_path / "events"
        self.log_file = tmp_path / "target.log"
        self.proc = None

    def write_config(self, **options) -> None:
        default = {"graceful_shutdown_timeout": 10, "debug": True}
        default.update(options.pop("default", {}))
        lines = ["[DEFAULT]", *(f"{k} = {v}" for k, v in default.items())]
        lines += ["[target]", f"events_file = {self.events_file}"]
        lines += [f"{k} = {v}" for k, v in options.items()]
        self.conf_file.write_text("\n".join(lines) + "\n")

    def start(self, env=None, **options) -> Target:
        self.write_config(**options)
        self.proc = spawn(
            [PYTHON, str(TARGET), "--config-file", str(self.conf_file)],
            self.log_file,
            env={"WSGISVC_BACKEND": self.backend, **(env or {})},
        )
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def events(self, name: str | None = None) -> list[tuple[int, str, str]]:
        if not self.events_file.exists():
            return []
        rows = [
            (int(pid), event, value)
            for pid, event, value in (
                line.split(" ", 2) for line in self.events_file.read_text().splitlines()
            )
        ]
        return [row for row in rows if name is None or row[1] == name]

    def started_pids(self) -> list[int]:
        return [pid for pid, _, _ in self.events("start")]

    def log(self) -> str:
        return self.log_file.read_text()

    def workers(self) -> list[int]:
        return children(self.pid)

    def wait_workers(
        self, count: int, timeout: float = 10.0, replacing: list[int] = ()
    ) -> list[int]:
        """Wait until ``count`` workers, none of them in ``replacing``, run and
        each recorded its start."""

        def ready():
            pids = self.workers()
            started = set(self.started_pids())
            return (
                len(pids) == count
                and set(pids) <= started
                and not set(pids) & set(replacing)
                and sorted(pids)
            )

        return wait_for(ready, timeout)

    def signal(self, signo: int) -> None:
        os.kill(self.pid, signo)

    def exit_status(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)


def wait_gone(pids, timeout: float) -> float:
    """Seconds until every pid in ``pids`` is gone; fails after ``timeout``."""
    begin = time.monotonic()
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout, interval=0.01)
    return time.monotonic() - begin


def sigterm_and_wait(target: Target, timeout: float = 15.0) -> int:
    target.signal(signal.SIGTERM)
    return target.exit_status(timeout)
