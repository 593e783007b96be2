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
