"""An accept() that fails unexpectedly, in a real wsgisvc-api, end to end:
the process says why and stops with status 1; under a ProcessLauncher the
parent forks a worker in its place.

The failure is real: ``_accept_breakers.listener`` (mounted at
/break-listener) points the serving process's listening descriptor at a socket
that does not listen, so its accept() fails with EINVAL; the next connection
to come in wakes its accept loop. ``_accept_breakers.accept_loop`` (at
/break-accept-loop) makes the accept loop itself raise instead, as a bug in it
would.
"""

from __future__ import annotations

import json
import re
import socket

import pytest

from tests.functional._wsgi_util import api_server, paste_for_tests
from tests.helpers import wait_for

BREAK_APPS = """
[app:breaklistener]
paste.app_factory = tests.functional._accept_breakers:listener

[app:breakacceptloop]
paste.app_factory = tests.functional._accept_breakers:accept_loop
"""

# What breaks: the path that breaks it, and what the process then says.
BREAKS = {
    "listener": ("/break-listener", "Invalid argument"),
    "accept-loop": ("/break-accept-loop", r"RuntimeError\('the accept loop broke'\)"),
}


def break_listener_config(tmp_path) -> str:
    """A paste file with /break-listener and /break-accept-loop mounted, as an
    ``extra`` config line: after the one write_config writes, it is the value
    oslo.config takes."""
    marker = "/test = testapp\n"
    mounts = "/break-listener = breaklistener\n/break-accept-loop = breakacceptloop\n"
    paste = tmp_path / "break-paste.ini"
    paste.write_text(paste_for_tests().replace(marker, marker + mounts) + BREAK_APPS)
    return f"api_paste_config = {paste}\n"


def break_a_listener(api, path: str = "/break-listener") -> int:
    """Break the listener (or what ``path`` breaks) of the process that serves
    this request; its pid."""
    status, _, body = api.request(path)
    assert status == 200, body
    return json.loads(body)["pid"]


def cannot_accept(pid: int, why: str = "Invalid argument") -> re.Pattern:
    return re.compile(
        rf"pid {pid}: osapi cannot accept connections: .*{why}.*; "
        "stopping gracefully"
    )


@pytest.mark.timeout(90)
def test_a_single_process_that_cannot_accept_exits_1_saying_why(tmp_path, backend):
    extra = break_listener_config(tmp_path)
    with api_server(tmp_path, workers=1, extra=extra, backend=backend) as api:
        assert break_a_listener(api) == api.pid
        # A connection comes in: the accept loop wakes, and fails.
        with socket.create_connection(("127.0.0.1", api.port), timeout=10):
            status = api.proc.wait(timeout=30)
        log = api.log()
    assert status == 1, log
    assert cannot_accept(api.pid).search(log), log


@pytest.mark.timeout(120)
@pytest.mark.parametrize("what", sorted(BREAKS))
def test_a_worker_that_cannot_accept_is_replaced(tmp_path, backend, what):
    """Defect (threads, accept-loop): an exception in the selector thread
    ended it silently; the worker stayed up, accepting nothing."""
    path, why = BREAKS[what]
    extra = break_listener_config(tmp_path)
    with api_server(tmp_path, workers=2, extra=extra, backend=backend) as api:
        first = api.workers()
        broken = break_a_listener(api, path)
        assert broken in first

        def replaced():
            # a connection for the broken worker's accept loop to wake on;
            # another worker serves it
            api.ping_pid()
            workers = api.workers()
            return len(workers) == 2 and broken not in workers and workers

        new = wait_for(replaced, timeout=30, what=f"worker {broken} replaced")
        (respawned,) = new - first
        # the new worker accepts on the parent's listener, which is intact
        wait_for(lambda: api.ping_pid() == respawned, what="the new worker serving")
        assert api.proc.poll() is None
        log = api.log()
    assert cannot_accept(broken, why).search(log), log
    assert re.search(rf"worker {broken} exited with status 1; respawning", log), log
