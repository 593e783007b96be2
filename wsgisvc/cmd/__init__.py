"""Binaries, and the one place a start-up error becomes one line and exit 1.

Importing this package first picks the backend (``import wsgisvc`` reads
``WSGISVC_BACKEND``) and, on eventlet, monkey patches the standard library. That
must happen before anything else imports socket, threading or time, so every
``wsgisvc.cmd.*`` module is an entry point and imports nothing before this. On
the threading backend nothing is patched and eventlet is never imported.

It also gives the binary a ConfigOpts of its own as ``wsgisvc.config.CONF``
(``config.use_own_conf``): what the app does with oslo.config's global CONF is
the app's business.
"""

from wsgisvc import backend

if backend.NAME == "eventlet":
    import os

    # eventlet's green DNS (dnspython: its import is a large part of the
    # start-up, bench/README.md "eventlet's green DNS") only when asked for:
    # EVENTLET_NO_GREENDNS=no turns it back on.
    os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")
    import eventlet

    eventlet.monkey_patch()

import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import TypeVar  # noqa: E402

from wsgisvc import config, errors  # noqa: E402

config.use_own_conf()
LOG = logging.getLogger("wsgisvc.cmd")
T = TypeVar("T")


def startup_errors(prog: str, call: Callable[[], T]) -> T:
    """``call()``; a StartupError it raises is one line, logged and on stderr,
    and exit status 1.

    Every binary goes through here (``binary.run()`` does), so they all fail
    alike: ``<prog> cannot start: <why>``, a multi-line message (a paste file's
    parse error) folded into that one line, no traceback.
    """
    try:
        return call()
    except errors.StartupError as error:
        line = f"{prog} cannot start: {one_line(str(error))}"
    # Out of the except block: oslo.log would append the traceback.
    LOG.error("%s", line)
    if not _logged_to_stderr():
        print(line, file=sys.stderr)
    sys.exit(1)


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _logged_to_stderr() -> bool:
    """Did the LOG.error line reach stderr's file already? Yes when a root
    handler streams to it (oslo.log streams to stdout: on a terminal, or with
    ``2>&1``, that is stderr's file too), or when logging is not set up yet
    (Python's last resort handler writes to stderr then)."""
    handlers = logging.getLogger().handlers
    if not handlers:
        return True
    return any(_is_stderr(getattr(h, "stream", None)) for h in handlers)


def _is_stderr(stream) -> bool:
    """True when ``stream`` writes where stderr does (the same open file)."""
    if stream is None or stream is sys.stderr:
        return stream is not None
    try:
        ours, theirs = os.fstat(stream.fileno()), os.fstat(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # no file behind a stream
        return False
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)
