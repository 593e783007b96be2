"""Socket activation: wsgisvc-api started as systemd starts a .socket unit's
service serves the sockets it was passed (TCP and unix, both backends), and
refuses, in one line, sockets that do not match its services."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket

import pytest

from tests.functional._activation_util import (
    activated,
    tcp_listener,
    unix_get,
    unix_listener,
)
from tests.functional._wsgi_util import api_server, start_api, write_config
from tests.helpers import alive, children, wait_for


@contextlib.contextmanager
def activated_api(tmp_path, backend: str, named, **variables):
    """wsgisvc-api with 2 workers, started as systemd would start it with
    ``named`` (name, fd) passed (``variables``: see ``activated``)."""
    with (
        activated(named, **variables) as how,
        api_server(
            tmp_path,
            workers=2,
            backend=backend,
            command=how.command,
            env=how.env,
            pass_fds=how.pass_fds,
        ) as api,
    ):
        yield api


@pytest.mark.timeout(90)
def test_serves_the_passed_tcp_socket(tmp_path, backend):
    listener = tcp_listener()
    port = listener.getsockname()[1]
    with activated_api(tmp_path, backend, [("osapi", listener.fileno())]) as api:
        # osapi_listen_port = 0 in the config: the passed socket wins
        assert api.port == port
        assert f"listening on http://127.0.0.1:{port} (socket passed in" in api.log()
        status, _, body = api.request("/test/pool")
        assert status == 200
        assert json.loads(body)["listen_fds"] is None  # unset for the children
        api.proc.send_signal(signal.SIGTERM)
        assert api.proc.wait(timeout=30) == 0
    # the socket is systemd's: it still listens once the service is gone
    probe = socket.create_connection(("127.0.0.1", port), timeout=5)
    probe.close()
    listener.close()


@pytest.mark.timeout(90)
def test_serves_the_passed_unix_socket(tmp_path, backend):
    path = tmp_path / "api.sock"
    listener = unix_listener(path)
    conf = write_config(tmp_path, workers=2)
    with activated([("osapi", listener.fileno())]) as how:
        proc, log_path = start_api(
            tmp_path,
            conf,
            command=how.command,
            backend=backend,
            env=how.env,
            pass_fds=how.pass_fds,
        )
    try:
        wait_for(lambda: f"listening on http+unix://{path}" in log_path.read_text())

        def answers():
            assert proc.poll() is None, log_path.read_text()
            try:
                return unix_get(path, "/v1/ping", timeout=5)[0] == 200
            except OSError:
                return False

        wait_for(answers, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()


@pytest.mark.timeout(120)
def test_an_upgrade_after_socket_activation_serves_on_the_same_socket(
    tmp_path, backend
):
    """SIGUSR1 to a socket-activated parent: the new parent takes the
    socket systemd passed (by its name, as an upgrade passes it) and serves
    on it; the old parent exits 0 with its workers."""
    listener = tcp_listener()
    port = listener.getsockname()[1]
    with activated_api(tmp_path, backend, [("osapi", listener.fileno())]) as api:
        old_workers = api.workers()

        api.proc.send_signal(signal.SIGUSR1)

        assert api.proc.wait(timeout=60) == 0, api.log()
        assert not [pid for pid in old_workers if alive(pid)], "orphans"
        new_parent = int(re.search(r"upgrade: new parent (\d+) serves", api.log())[1])
        new_workers = wait_for(
            lambda: len(found := children(new_parent)) == 2 and set(found)
        )
        assert not new_workers & old_workers
        assert re.search(
            rf" {new_parent} INFO wsgisvc\.wsgi \[-\] osapi listening on "
            rf"http://127\.0\.0\.1:{port} \(socket passed in LISTEN_FDS\)",
            api.log(),
        ), api.log()
        assert api.ping_pid() in new_workers  # on the port systemd holds

        os.kill(new_parent, signal.SIGTERM)

        wait_for(lambda: not alive(new_parent), timeout=60)
        assert re.search(
            rf" {new_parent} INFO \S+ \[-\] all workers stopped; exiting with "
            r"status 0$",
            api.log(),
            re.MULTILINE,
        ), api.log()
        assert "Traceback" not in api.log()
    # still systemd's socket: it listens once both generations are gone
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    listener.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "variables",
    [{"listen_pid": "pytest"}, {"LISTEN_FDS": "0", "LISTEN_FDNAMES": ""}],
    ids=["listen-pid-of-another-process", "listen-fds-0"],
)
def test_variables_for_another_process_are_ignored(tmp_path, backend, variables):
    """LISTEN_PID names another process (variables a socket-activated
    process left to its children), or LISTEN_FDS=0 passes no socket
    (sd_listen_fds returns 0: not activated): the binary binds a port of its
    own, and its workers do not see the variables."""
    listener = tcp_listener()
    passed_port = listener.getsockname()[1]
    if variables.get("listen_pid") == "pytest":
        variables = {"listen_pid": os.getpid()}
    try:
        with activated_api(
            tmp_path, backend, [("osapi", listener.fileno())], **variables
        ) as api:
            assert api.port != passed_port
            assert "(socket passed in" not in api.log()
            status, _, body = api.request("/test/pool")
            assert status == 200
            assert json.loads(body)["listen_fds"] is None
    finally:
        listener.close()


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def _bound_not_listening() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def _unix_datagram(path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    return sock


MISMATCHES = {
    "socket-for-no-service": (
        lambda tmp: [("osapi", tcp_listener()), ("admin", tcp_listener())],
        r"socket activation: 'admin' \(fd 4\) passed, for no service of this binary",
        {},
    ),
    "service-with-no-socket": (
        lambda tmp: [("wsgisvc-api.socket", tcp_listener())],
        r"socket activation: no socket named 'osapi' among those passed "
        r"\('wsgisvc-api.socket' \(fd 3\)\); set FileDescriptorName=osapi",
        {},
    ),
    "wrong-type": (
        lambda tmp: [("osapi", _udp())],
        r"socket activation: 'osapi': fd 3 \(AF_INET SOCK_DGRAM\) is not a TCP "
        r"or unix stream socket",
        {},
    ),
    "wrong-family-and-type": (
        lambda tmp: [("osapi", _unix_datagram(tmp / "dgram.sock"))],
        r"socket activation: 'osapi': fd 3 \(AF_UNIX SOCK_DGRAM\) is not a TCP "
        r"or unix stream socket",
        {},
    ),
    "not-listening": (
        lambda tmp: [("osapi", _bound_not_listening())],
        r"socket activation: 'osapi': fd 3 is a socket that does not listen",
        {},
    ),
    "two-sockets-one-name": (
        lambda tmp: [("osapi", tcp_listener()), ("osapi", tcp_listener())],
        r"socket activation: fds 3 and 4 are both named 'osapi'",
        {},
    ),
    # what systemd never sets: the variables themselves are wrong
    "listen-fds-not-a-number": (
        lambda tmp: [("osapi", tcp_listener())],
        r"socket activation: LISTEN_FDS='one' is not a number of sockets$",
        {"LISTEN_FDS": "one"},
    ),
    "listen-fds-negative": (
        lambda tmp: [("osapi", tcp_listener())],
        r"socket activation: LISTEN_FDS='-1' is not a number of sockets$",
        {"LISTEN_FDS": "-1", "LISTEN_FDNAMES": ""},
    ),
    "fewer-names-than-fds": (
        lambda tmp: [("osapi", tcp_listener()), ("admin", tcp_listener())],
        r"socket activation: LISTEN_FDS=2 but LISTEN_FDNAMES names 1: 'osapi'$",
        {"LISTEN_FDNAMES": "osapi"},
    ),
    "more-names-than-fds": (
        lambda tmp: [("osapi", tcp_listener())],
        r"socket activation: LISTEN_FDS=1 but LISTEN_FDNAMES names 2: 'osapi:admin'$",
        {"LISTEN_FDNAMES": "osapi:admin"},
    ),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_a_mismatch_is_one_line_and_exit_1(tmp_path, case, backend):
    make, expected, variables = MISMATCHES[case]
    sockets = make(tmp_path)
    conf = write_config(tmp_path, workers=2)
    named = [(name, sock.fileno()) for name, sock in sockets]
    try:
        with activated(named, **variables) as how:
            proc, log_path = start_api(
                tmp_path,
                conf,
                command=how.command,
                backend=backend,
                env=how.env,
                pass_fds=how.pass_fds,
            )
        assert proc.wait(timeout=45) == 1
    finally:
        for _, sock in sockets:
            sock.close()
    log = log_path.read_text()
    # one message (issue 19 item 1 makes it one line on a terminal too)
    why = {
        line.split("cannot start: ")[1]
        for line in log.splitlines()
        if "cannot start: " in line
    }
    assert len(why) == 1, log
    assert re.match(expected, why.pop()), log
    # refused before any fork (a service may have taken its own socket)
    assert "started worker" not in log and "Traceback" not in log, log
    # nor bound a port of its own (a service may serve the socket it was passed)
    bound = [x for x in log.splitlines() if "listening on" in x]
    assert all("(socket passed in LISTEN_FDS)" in x for x in bound), log
