"""Which scheduler wsgisvc runs on: ``eventlet`` (the default) or ``threading``.

Read once, from ``WSGISVC_BACKEND``, when ``wsgisvc`` is first imported and before
anything monkey patches, so every module of one process agrees on it. What differs
between the two backends lives in this package, one module each (``_eventlet``,
``_threading``) with the same names; everything else is written against those
names, reached as ``backend.spawn`` and so on. The chosen module is imported on
first use, so reading ``NAME`` imports no scheduler, and under ``threading``
nothing imports eventlet.

The names: ``spawn(fn, *args)`` (a Task to ``wait()`` for),
``spawn_after(seconds, fn)``, ``os_thread(fn, name, delay)`` (a real OS thread on
either backend, as a timer that can be cancelled), ``Event`` (``set``,
``is_set``, ``clear``, ``wait(timeout)``), ``sleep``, ``wait_readable(fds,
timeout)`` (the launchers' sleep: a select that lets the process's other work
run), ``os_read``/``os_write``/``os_sleep`` (never parked by patching),
``current_task()`` and ``task_frame(task)`` (the stack of a greenthread or
thread, read from another thread), ``current_os_thread()``,
``greenthread_frames()``,
``after_fork_in_child()``, ``describe()`` (the line every launcher logs).
"""

import importlib
import os
import sys

__all__ = ["NAME", "BACKENDS", "spawn", "spawn_after", "Event", "sleep"]

#: The backends there are, by the name ``WSGISVC_BACKEND`` takes.
BACKENDS = ("eventlet", "threading")


def _chosen() -> str:
    name = os.environ.get("WSGISVC_BACKEND", "").strip() or "eventlet"
    if name not in BACKENDS:
        raise SystemExit(f"WSGISVC_BACKEND={name!r}: use one of {', '.join(BACKENDS)}")
    return name


class _NoEventlet:
    """A finder that refuses ``eventlet`` and its modules, as if not installed."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname.partition(".")[0] == "eventlet":
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (WSGISVC_BACKEND=threading)",
                name=fullname,
            )
        return None


def _keep_eventlet_out() -> None:
    """Under threading nothing imports eventlet, though it is installed.

    Libraries that use eventlet when they find it (futurist, oslo.utils, the
    default backend of oslo.service, which oslo.messaging imports) are told it
    is missing, and oslo.service is pointed at its own threading backend. The
    refusal is a finder, not a ``None`` in ``sys.modules``: an app that keeps
    eventlet out itself (nova's WSGI modules) refuses to load when it finds
    ``eventlet`` in ``sys.modules`` at all.
    """
    sys.meta_path.insert(0, _NoEventlet())
    from oslo_service import backend as oslo_service_backend

    oslo_service_backend.register_backend_default_hook(
        lambda: oslo_service_backend.BackendType.THREADING
    )


#: The backend of this process: ``eventlet`` or ``threading``.
NAME = _chosen()
if NAME == "threading":
    _keep_eventlet_out()


def __getattr__(name: str):
    implementation = importlib.import_module(f"wsgisvc.backend._{NAME}")
    try:
        return getattr(implementation, name)
    except AttributeError:
        raise AttributeError(f"wsgisvc.backend has no {name!r}") from None
