"""systemd: sd_notify (Type=notify units: ready, stopping) and socket
activation (the listening sockets systemd, or an upgrade, passes in
``LISTEN_FDS``)."""

import os
import socket

from oslo_log import log as logging

from wsgisvc.errors import SocketActivationError
from wsgisvc.http import listeners

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


# --- socket activation (sd_listen_fds) -------------------------------------

# sd_listen_fds(3): the passed descriptors are 3, 4, ... in LISTEN_FDNAMES order.
LISTEN_FDS_START = 3
ACTIVATION_ENV = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")

_unclaimed: dict[str, socket.socket] | None = None  # None: not activated
_activation_read = False


def activated_socket(name: str) -> socket.socket | None:
    """The listening socket passed for service ``name``, or None when this
    process was not socket-activated.

    systemd names each socket with the ``FileDescriptorName=`` of its .socket
    unit, which must be the service's name (``osapi``); an upgrade names the
    sockets it hands over the same way. Each socket is served by one service.
    Raises SocketActivationError when sockets were passed but none for ``name``.
    """
    sockets = _passed_sockets()
    if sockets is None:
        return None
    if name not in sockets:
        raise SocketActivationError(
            f"socket activation: no socket named {name!r} among those passed "
            f"({_names(sockets)}); set FileDescriptorName={name} in its .socket unit"
        )
    return sockets.pop(name)


def check_sockets_claimed() -> None:
    """Refuse to serve when a passed socket is for no service of this binary
    (a client connecting there would wait forever)."""
    sockets = _passed_sockets()
    if sockets:
        raise SocketActivationError(
            f"socket activation: {_names(sockets)} passed, for no service of "
            "this binary (FileDescriptorName= names the service a socket is for)"
        )


def _names(sockets: dict[str, socket.socket]) -> str:
    return ", ".join(f"{name!r} (fd {sock.fileno()})" for name, sock in sockets.items())


def _passed_sockets() -> dict[str, socket.socket] | None:
    """Read the activation variables once (sd_listen_fds semantics): they are
    for this process only when LISTEN_PID is its pid, and they are removed from
    the environment whatever they say, so a child forked or exec'd later does
    not take them, or descriptors it does not own, for its own."""
    global _unclaimed, _activation_read
    if not _activation_read:
        _activation_read = True
        values = {key: os.environ.pop(key, None) for key in ACTIVATION_ENV}
        if values["LISTEN_PID"] == str(os.getpid()) and values["LISTEN_FDS"]:
            # LISTEN_FDS=0 passes no socket: not activated (sd_listen_fds' 0)
            _unclaimed = (
                _read_sockets(values["LISTEN_FDS"], values["LISTEN_FDNAMES"]) or None
            )
    return _unclaimed


def _read_sockets(count: str, names: str | None) -> dict[str, socket.socket]:
    try:
        passed = int(count)
    except ValueError:
        passed = -1
    if passed < 0:
        raise SocketActivationError(
            f"socket activation: LISTEN_FDS={count!r} is not a number of sockets"
        )
    fds = range(LISTEN_FDS_START, LISTEN_FDS_START + passed)
    # without LISTEN_FDNAMES every socket is "unknown", as sd_listen_fds says
    labels = names.split(":") if names else ["unknown"] * len(fds)
    if len(labels) != len(fds):
        raise SocketActivationError(
            f"socket activation: LISTEN_FDS={count} but LISTEN_FDNAMES names "
            f"{len(labels)}: {names!r}"
        )
    sockets: dict[str, socket.socket] = {}
    for fd, label in zip(fds, labels, strict=True):
        if label in sockets:
            raise SocketActivationError(
                f"socket activation: fds {sockets[label].fileno()} and {fd} are "
                f"both named {label!r}; a service serves one socket"
            )
        try:
            sockets[label] = listeners.inherited_listener(fd)
        except listeners.ListenError as exc:
            raise SocketActivationError(f"socket activation: {label!r}: {exc}") from exc
    return sockets
