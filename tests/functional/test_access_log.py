"""The access line of a real wsgisvc-api, on both backends (issue 24): written
for every answered request whatever stops the process, carrying the request's
id and its oslo.context context as the app's own lines do, on the
``wsgisvc.access`` logger; one INFO line per refusal."""

from __future__ import annotations

import fcntl
import http.client
import os
import re
import signal
import socket
import subprocess
import threading

import pytest

from tests.functional._wsgi_util import (
    BINARY,
    LISTENING,
    ROOT,
    api_server,
    paste_for_tests,
    write_config,
)
from tests.helpers import children, kill_group, wait_for

ACCESS = re.compile(r' INFO [\w.]+ \[[^]]*\] .*"GET /v1/ping\?n=(-?\d+) HTTP')


class PipedLog:
    """The binary's output through a pipe of one page, read by a thread that
    stops reading while ``held``: a log sink that falls behind, as journald's
    pipe under load."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        fcntl.fcntl(self.write_fd, fcntl.F_SETPIPE_SZ, 4096)
        self.data = bytearray()
        self.reading = threading.Event()
        self.reading.set()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        os.close(self.write_fd)
        self._thread.start()

    def _read(self) -> None:
        while True:
            self.reading.wait()
            data = os.read(self.read_fd, 65536)
            if not data:
                return
            self.data += data

    def text(self) -> str:
        return self.data.decode(errors="replace")

    def until_closed(self) -> str:
        self.reading.set()
        self._thread.join(30)
        os.close(self.read_fd)
        return self.text()


def start_api(tmp_path, workers: int, backend: str):
    conf = write_config(tmp_path, workers)
    log = PipedLog()
    proc = subprocess.Popen(
        [BINARY, "--config-file", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=log.write_fd,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=tmp_path,
        env=dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(ROOT),
            WSGISVC_BACKEND=backend,
        ),
    )
    log.start()
    return proc, log


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.parametrize("workers", [1, 2])
def test_every_answered_request_has_its_access_line_whatever_stops_it(
    tmp_path, backend, workers, signum
):
    """Defect: on threads the lines waiting for the writer thread were lost
    when a worker left through os._exit, and at SIGINT. The log sink is held
    while the requests are made, so lines are still queued at the signal; on
    eventlet a held sink holds the whole server (a line is written before the
    next request is read), so there the sink is not held. The signal goes to
    the process group, as a terminal's Ctrl-C and systemd's stop send it: a
    worker gets it while its lines are still queued."""
    proc, log = start_api(tmp_path, workers, backend)
    try:
        match = wait_for(lambda: LISTENING.search(log.text()), timeout=30)
        wait_for(lambda: len(children(proc.pid)) == workers or workers == 1)
        port = int(match.group(2))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/v1/ping?n=-1")
        assert conn.getresponse().read()
        wait_for(lambda: "n=-1 HTTP" in log.text())
        if backend == "threading":
            log.reading.clear()
        for n in range(200):
            conn.request("GET", f"/v1/ping?n={n}")
            response = conn.getresponse()
            response.read()
            assert response.status == 200

        os.killpg(proc.pid, signum)  # as Ctrl-C does, and systemd's stop

        log.reading.set()
        assert proc.wait(timeout=60) == (1 if signum == signal.SIGINT else 0)
        text = log.until_closed()
        conn.close()
    finally:
        kill_group(proc)
    written = [int(n) for n in ACCESS.findall(text)]
    assert sorted(written) == list(range(-1, 200)), text[-3000:]


CONTEXT_PASTE = """
[pipeline:contextapi]
pipeline = request_id contextapp

[app:contextapp]
paste.app_factory = tests.functional._context_app:factory
"""


@pytest.mark.timeout(90)
def test_the_access_line_carries_the_request_id_and_the_apps_context(tmp_path, backend):
    """Defects: the line was on ``eventlet.wsgi.server``; on threads it
    never carried the app's context (formatted in the writer thread, where
    none is current), and on eventlet a request that made none carried the
    one an earlier request on the connection left behind."""
    paste = paste_for_tests().replace(
        "/v1 = apiv1\n", "/v1 = apiv1\n/context = contextapi\n"
    )
    with api_server(
        tmp_path, workers=1, backend=backend, paste_text=paste + CONTEXT_PASTE
    ) as api:
        conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
        user = {"X-User-Id": "u1", "X-Project-Id": "p1"}
        conn.request("GET", "/context", headers=user)
        answer = conn.getresponse()
        assert answer.read() == b"ok\n"
        rid = answer.getheader("x-openstack-request-id")
        conn.request("GET", "/v1/ping")  # the same connection; it makes none
        answer = conn.getresponse()
        answer.read()
        ping_rid = answer.getheader("x-openstack-request-id")
        conn.close()
        ping = wait_for(lambda: _line(api.log(), ping_rid))
        app_line = _line(api.log(), "the app's own line")
        access_line = _line(api.log(), '"GET /context HTTP/1.1"')
    context = re.search(r"\[[^]]*\] ", app_line).group()  # as oslo.log shows it
    assert f" {rid} u1 p1 " in context
    assert f"INFO wsgisvc.access {context}127.0.0.1 " in access_line
    assert f"INFO wsgisvc.access [ {ping_rid} ] 127.0.0.1 " in ping


def _line(log: str, needle: str) -> str | None:
    return next((line for line in log.splitlines() if needle in line), None)


@pytest.mark.timeout(90)
def test_a_refusal_is_one_info_line(tmp_path, backend):
    """Defect: each refusal was two INFO lines, "rejected request ..." and
    its access line."""
    with api_server(tmp_path, workers=1, backend=backend) as api:
        with socket.create_connection(("127.0.0.1", api.port), timeout=30) as sock:
            sock.sendall(b"GET /v1/ping?refused HTTP/1.1\r\nHost: a, b\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
        api.request("/v1/ping")  # a line after it: nothing more is coming
        wait_for(lambda: '"GET /v1/ping HTTP/1.1"' in api.log())
        lines = [
            line
            for line in api.log().splitlines()
            if "refused" in line or "rejected" in line
        ]
    assert len(lines) == 1, lines
    assert (
        'INFO wsgisvc.access [-] 127.0.0.1 "GET /v1/ping?refused HTTP/1.1" '
        "status: 400 " in lines[0]
    )
