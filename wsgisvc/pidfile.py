"""The pid file: which process is the service, for init scripts and tools
that track a daemon by file (``pid_file``).

It names the top process (the ProcessLauncher's parent, or the single
process). It is written once that process is the service: when its launcher
starts, or, in a binary that an upgrade (SIGUSR1) started, only when it
serves and takes over, so the file never names a new parent that may still
fail. It is removed when the process that it names exits; the old parent of
an upgrade leaves it to the new one.
"""

from __future__ import annotations

import os


def write(path: str | None) -> None:
    """Name this process in ``path`` (none: nothing), replacing it at once."""
    if not path:
        return
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "w") as file:
        file.write(f"{os.getpid()}\n")
    os.replace(partial, path)


def remove(path: str | None) -> None:
    """Remove ``path`` if it still names this process."""
    if not path:
        return
    try:
        with open(path) as file:
            named = file.read().strip()
    except OSError:
        return
    if named == str(os.getpid()):
        try:
            os.unlink(path)
        except OSError:
            pass
