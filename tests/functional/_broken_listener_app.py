"""A paste app the accept-failure tests mount at /break-listener: a request to
it makes accept() fail for real in the process that serves it.

The listening socket's descriptor is pointed at a socket that does not listen
(``dup2``), so this process's next accept() fails with EINVAL, as on a
listener broken under it, while the parent and the sibling workers keep
theirs (descriptors are per process, the socket is shared). The listening
socket itself is kept open (a duplicate): connections keep coming in and wake
the accept loop, which then fails; they are left to another process.

Answers the pid of the process it broke.
"""

import json
import os
import socket

_kept: list = []  # the listening socket's duplicate and its stand-in


def break_listener(environ, start_response):
    fd = environ["wsgisvc.server"].socket.fileno()
    _kept.append(os.dup(fd))
    stand_in = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    _kept.append(stand_in)
    os.dup2(stand_in.fileno(), fd)
    body = json.dumps({"pid": os.getpid()}).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def factory(global_conf, **local_conf):
    return break_listener
