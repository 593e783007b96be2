"""Which scheduler wsgisvc runs on: ``eventlet`` (the default) or ``threading``.

Read once, from ``WSGISVC_BACKEND``, when ``wsgisvc`` is first imported and before
anything monkey patches, so every module of one process agrees on it. What differs
between the two backends lives in this package, one module each (``_eventlet``,
``_threading``) with the same names; everything else is written against those
names, reached as ``backend.spawn`` and so on. The chosen module is imported on
first use, so reading ``NAME`` imports no scheduler, and under ``threading``
nothing imports eventlet.

The names: ``spawn(fn, *args)`` (a Task with ``done`` and ``wait()``),
``spawn_after(seconds, fn)``, ``os_thread(fn, name)`` (a real OS thread on either
backend), ``Event`` (``set``, ``is_set``, ``wait(timeout)``), ``sleep``,
``wait_readable(fds, timeout)`` (the launchers' sleep: a select that lets the
process's other work run), ``os_read``/``os_write`` (never parked by patching),
``after_fork_in_child()``, ``describe()`` (the line every launcher logs).
"""

import importlib
import os

BACKENDS = ("eventlet", "threading")


def _chosen() -> str:
    name = os.environ.get("WSGISVC_BACKEND", "").strip() or "eventlet"
    if name not in BACKENDS:
        raise SystemExit(f"WSGISVC_BACKEND={name!r}: use one of {', '.join(BACKENDS)}")
    return name


NAME = _chosen()


def __getattr__(name: str):
    implementation = importlib.import_module(f"wsgisvc.backend._{NAME}")
    try:
        return getattr(implementation, name)
    except AttributeError:
        raise AttributeError(f"wsgisvc.backend has no {name!r}") from None
