"""Periodic tasks: methods a manager wants run every so often.

A method decorated with ``@periodic_task`` is collected when its class is
defined; ``PeriodicTasks.run_periodic_tasks()`` runs those that are due and
says how long the caller may idle before the next one is due, so the driving
loop (a ``DynamicLoopingCall``) sleeps exactly that long instead of polling.

Times are taken from the monotonic clock: a wall-clock jump neither stalls
tasks nor makes them run in a burst.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

from wsgisvc import opts

LOG = logging.getLogger(__name__)

#: Spacing of tasks declared without one, when the owner gives no default.
DEFAULT_INTERVAL = 60.0

_MARK = "_periodic_task"


def periodic_task(
    func: Callable | None = None,
    *,
    spacing: float | None = None,
    run_immediately: bool = False,
    enabled: bool = True,
    name: str | None = None,
    external_process_ok: bool = False,
) -> Callable:
    """Mark a method as a periodic task; usable bare or with arguments.

    ``spacing``: seconds between runs; ``None`` or 0 means the owner's default
    interval, a negative spacing disables the task. ``run_immediately``: the
    first run happens on the first round instead of one spacing later.
    ``external_process_ok``: the task may run in another process instead, and
    is skipped here when ``run_external_periodic_tasks`` is off.
    """

    def decorate(f: Callable) -> Callable:
        setattr(
            f,
            _MARK,
            {
                "name": name or f.__name__,
                "spacing": spacing,
                "run_immediately": run_immediately,
                "enabled": enabled and (spacing is None or spacing >= 0),
                "external_process_ok": external_process_ok,
            },
        )
        return f

    if func is not None:
        return decorate(func)
    return decorate


class PeriodicTasks:
    """Mixin that finds its ``@periodic_task`` methods and runs them when due.

    Tasks are collected per class (including inherited ones, which a subclass
    may override by name) when the class is created, so no scan happens at
    run time.
    """

    _periodic_tasks: tuple[tuple[str, str, dict[str, Any]], ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, tuple[str, str, dict[str, Any]]] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                info = getattr(value, _MARK, None)
                if info is not None:
                    found[info["name"]] = (info["name"], attr, info)
        cls._periodic_tasks = tuple(found.values())

    def __init__(self, conf: cfg.ConfigOpts, default_spacing: float | None = None):
        opts.register(conf, opts.periodic_task_opts)
        self._periodic_conf = conf
        self.default_spacing = default_spacing or DEFAULT_INTERVAL
        now = time.monotonic()
        self._periodic_last_run: dict[str, float] = {
            task_name: (-float("inf") if info["run_immediately"] else now)
            for task_name, _attr, info in self._periodic_tasks
        }

    def periodic_task_names(self) -> list[str]:
        """Names of the tasks that would run in this process."""
        return [name for name, _attr, info in self._periodic_tasks if self._runs(info)]

    def _runs(self, info: dict[str, Any]) -> bool:
        if not info["enabled"]:
            return False
        external_elsewhere = not self._periodic_conf.run_external_periodic_tasks
        return not (info["external_process_ok"] and external_elsewhere)

    def _spacing(self, info: dict[str, Any]) -> float:
        return info["spacing"] or self.default_spacing

    def run_periodic_tasks(self, context: Any, raise_on_error: bool = False) -> float:
        """Run every task that is due; return seconds until the next is due.

        A failing task is logged and the others still run, unless
        ``raise_on_error`` asks for the exception to propagate.
        """
        idle_for = self.default_spacing
        for task_name, attr, info in self._periodic_tasks:
            if not self._runs(info):
                continue
            spacing = self._spacing(info)
            due = self._periodic_last_run[task_name] + spacing
            now = time.monotonic()
            if due > now:
                idle_for = min(idle_for, due - now)
                continue
            # Keep to the task's rhythm when it is only slightly late.
            late = now - due
            self._periodic_last_run[task_name] = due if late < spacing else now
            self._run_one(task_name, attr, context, raise_on_error)
            idle_for = min(idle_for, spacing)
        return max(idle_for, 0.0)

    def _run_one(
        self, task_name: str, attr: str, context: Any, raise_on_error: bool
    ) -> None:
        LOG.debug("Running periodic task %s.%s", type(self).__name__, task_name)
        try:
            getattr(self, attr)(context)
        except Exception:
            if raise_on_error:
                raise
            LOG.exception(
                "Periodic task %s.%s failed; the other tasks still run",
                type(self).__name__,
                task_name,
            )


__all__ = ["DEFAULT_INTERVAL", "PeriodicTasks", "periodic_task"]
