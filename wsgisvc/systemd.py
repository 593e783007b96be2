"""sd_notify: tell systemd (Type=notify units) when we are ready and stopping."""

import os
import socket

from oslo_log import log as logging

LOG = logging.getLogger(__name__)


def notify(state: str) -> None:
    """Send ``state`` (e.g. ``READY=1``) to $NOTIFY_SOCKET; a no-op without it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        LOG.warning("could not notify systemd of %s: %s", state, exc)


class ReadinessRelay:
    """Lets a ProcessLauncher say READY=1 only once its workers have started.

    The workers' NOTIFY_SOCKET points at this datagram socket instead of
    systemd's, so the same ``notify("READY=1")`` a single process sends reaches
    the parent, which counts them.
    """

    def __init__(self) -> None:
        name = f"wsgisvc-notify-{os.getpid()}-{os.urandom(4).hex()}"
        self.address = "@" + name
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + name)
        self._sock.setblocking(False)
        self.ready_count = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def collect(self) -> None:
        """Count the READY=1 messages waiting on the socket."""
        while True:
            try:
                message = self._sock.recv(4096)
            except BlockingIOError:
                return
            if b"READY=1" in message.split(b"\n"):
                self.ready_count += 1
