"""wsgisvc.testing from the outside: what a binary that fails to start,
never serves, or ignores SIGTERM does to the helper, and that it imports
without pytest."""

from __future__ import annotations

import subprocess
import textwrap
import urllib.request

import pytest

from tests.functional._wsgi_util import BINARY, ROOT, write_config
from tests.helpers import PYTHON, alive
from wsgisvc import testing

# Says READY=1 as a wsgisvc launcher does, then ignores SIGTERM for a minute.
STUBBORN = textwrap.dedent(
    """
    import os, signal, socket, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    address = os.environ["NOTIFY_SOCKET"].replace("@", "\\0", 1)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(b"READY=1")
    time.sleep(60)
    """
)


@pytest.mark.timeout(90)
def test_serves_on_the_passed_socket_and_stops_by_its_group(tmp_path, backend):
    conf = write_config(tmp_path, workers=2)
    with testing.serve(
        [BINARY, "--config-file", str(conf)],
        name="osapi",
        backend=backend,
        env={"PYTHONPATH": str(ROOT)},
    ) as api:
        workers = api.children()
        assert len(workers) == 2  # READY=1 came once both served
        with urllib.request.urlopen(api.url + "/v1/ping", timeout=10) as answer:
            assert answer.status == 200
        assert f"listening on {api.url} (socket passed in LISTEN_FDS)" in api.output()
        assert api.stop() == 0
    assert not [pid for pid in workers if alive(pid)]


@pytest.mark.timeout(60)
def test_a_binary_that_cannot_start_raises_with_its_status_and_line(tmp_path):
    conf = write_config(tmp_path, workers=2, extra="osapi_workers = 0\n")
    with pytest.raises(testing.NotServing) as raised:
        testing.start([BINARY, "--config-file", str(conf)], name="osapi")
    assert raised.value.status == 1
    assert "cannot start: osapi_workers must be at least 1" in str(raised.value)


@pytest.mark.timeout(90)
def test_a_bare_program_name_is_found_beside_the_interpreter(tmp_path, monkeypatch):
    """A test run as ``.venv/bin/pytest``, the venv not activated, starts the
    venv's console script by its bare name; a name found nowhere says so."""
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    conf = write_config(tmp_path, workers=1)
    with testing.serve(
        ["wsgisvc-api", "--config-file", str(conf)],
        name="osapi",
        env={"PYTHONPATH": str(ROOT)},
    ) as api:
        assert api.stop() == 0
    with pytest.raises(FileNotFoundError, match="^no-such-api: neither beside "):
        testing.start(["no-such-api"], name="x")


@pytest.mark.timeout(60)
def test_a_binary_that_never_serves_is_killed_after_the_timeout(tmp_path):
    with pytest.raises(testing.NotServing, match="not serving after 1 s") as raised:
        testing.start(
            [PYTHON, "-c", "import time; time.sleep(60)"], name="x", timeout=1
        )
    assert raised.value.status is None


@pytest.mark.timeout(60)
def test_stop_kills_what_ignores_sigterm():
    service = testing.start([PYTHON, "-c", STUBBORN], name="x", timeout=30)
    assert service.stop(timeout=1) == -9
    assert not alive(service.pid)


@pytest.mark.timeout(30)
def test_importable_without_pytest():
    code = "import sys; sys.modules['pytest'] = None; import wsgisvc.testing"
    subprocess.run([PYTHON, "-c", code], check=True, timeout=20)
