"""A paste app the accept-failure tests mount at /break-accept-loop: a request
to it makes the accept loop of the process that serves it raise.

The scheduler's ``_accept`` (what the accept loop calls for each connection
coming in: the selector thread's on threads, the accepting greenthread's on
eventlet) is replaced by one that raises, as a bug in the loop would; the next
connection to come in wakes the loop, which then fails. The listener itself is
intact: those connections are left to another process.

Answers the pid of the process it broke.
"""

import json
import os


def _broken(*args):
    raise RuntimeError("the accept loop broke")


def break_accept_loop(environ, start_response):
    environ["wsgisvc.server"]._scheduler._accept = _broken
    body = json.dumps({"pid": os.getpid()}).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def factory(global_conf, **local_conf):
    return break_accept_loop
