"""Paste apps the accept-failure tests mount: a request to one breaks the
accept loop of the process that serves it, in one of two real ways. Each
answers the pid of the process it broke.

``listener`` (at /break-listener): the listening socket's descriptors (the
server's and its accept loop's copy) are pointed at a socket that does not
listen (``dup2``), so this process's next
accept() fails with EINVAL, as on a listener broken under it, while the parent
and the sibling workers keep theirs (descriptors are per process, the socket
is shared). The listening socket itself is kept open (a duplicate):
connections keep coming in and wake the accept loop, which then fails; they
are left to another process.

``accept_loop`` (at /break-accept-loop): the scheduler's ``_accept`` (what the
accept loop calls for each connection coming in: the selector thread's on
threads, the accepting greenthread's on eventlet) is replaced by one that
raises, as a bug in the loop would. The listener itself is intact.
"""

import json
import os
import socket

_kept: list = []  # the listening socket's duplicate and its stand-in


def _break_listener(server) -> None:
    break_listening(server.socket.getsockname())


def break_listening(address) -> None:
    """Point this process's descriptors of the socket listening on ``address``
    at one that does not listen (the gunicorn test app's /break-listener too)."""
    for fd in _listening_descriptors(address):  # the accept loop's own included
        _kept.append(os.dup(fd))
        stand_in = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        _kept.append(stand_in)
        os.dup2(stand_in.fileno(), fd)


def _listening_descriptors(address) -> list[int]:
    """This process's descriptors of the socket listening on ``address``."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            copy = os.dup(int(name))
        except OSError:  # already gone (the listing's own descriptor)
            continue
        try:
            sock = socket.socket(fileno=copy)
        except OSError:  # not a socket
            os.close(copy)
            continue
        with sock:
            try:
                listens = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                if listens and sock.getsockname() == address:
                    found.append(int(name))
            except OSError:
                continue
    return found


def _raise(*args):
    raise RuntimeError("the accept loop broke")


def _break_accept_loop(server) -> None:
    server._scheduler._accept = _raise


def _app(breaks):
    def app(environ, start_response):
        breaks(environ["wsgisvc.server"])
        body = json.dumps({"pid": os.getpid()}).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


def listener(global_conf, **local_conf):
    return _app(_break_listener)


def accept_loop(global_conf, **local_conf):
    return _app(_break_accept_loop)
