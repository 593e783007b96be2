"""Process titles that tell a ProcessLauncher's parent from its workers in
``ps`` and ``top``: ``wsgisvc-api: parent [osapi]``, ``wsgisvc-api: worker
2/4 [osapi]`` (the worker's slot, of the slots its service had when it was
forked). An operator signals the parent (reload, upgrade) and may kill a
worker; with every process showing the same command line, only the pids'
ages told which was which.

The title replaces what ``/proc/PID/cmdline`` shows; ``sys.orig_argv``, which
an upgrade execs, keeps the command as it was started.
"""

import os
import sys

import setproctitle


def _program() -> str:
    return os.path.basename(sys.argv[0]) or "python"


def parent(services: list[str]) -> None:
    setproctitle.setproctitle(f"{_program()}: parent [{', '.join(services)}]")


def worker(service: str, slot: int, slots: int) -> None:
    """In a new worker: the ``slot``-th (from 1) of ``slots``."""
    setproctitle.setproctitle(f"{_program()}: worker {slot}/{slots} [{service}]")
