"""Run the real ``wsgisvc-api`` binary for functional tests, and talk to it.

``api_server()`` writes a config file (``osapi_listen_port = 0``) and a paste
file (etc/api-paste.ini plus ``_wsgi_testapp`` mounted at /test), starts the
binary in its own session, reads the port from the ``osapi listening on`` line,
and kills the whole process group when the test ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import subprocess
from pathlib import Path

from tests.helpers import BIN, children, kill_group, spawn, wait_for

BACKENDS = ("eventlet", "threading")

ROOT = Path(__file__).resolve().parents[2]
BINARY = str(Path(BIN) / "wsgisvc-api")
LISTENING = re.compile(r"osapi listening on (https?)://127\.0\.0\.1:(\d+)")

TEST_APP = """
[app:testapp]
paste.app_factory = tests.functional._wsgi_testapp:factory
"""


def paste_for_tests() -> str:
    """etc/api-paste.ini with ``/test = testapp`` added to the osapi composite."""
    sample = (ROOT / "etc" / "api-paste.ini").read_text()
    marker = "/v1 = apiv1\n"
    assert marker in sample, "etc/api-paste.ini changed shape"
    return sample.replace(marker, marker + "/test = testapp\n") + TEST_APP


class Api:
    """A running wsgisvc-api parent process: its port, log and workers."""

    def __init__(self, proc: subprocess.Popen, log_path: Path) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.log_path = log_path
        self.port = 0
        self.scheme = "http"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> set[int]:
        return set(children(self.pid))

    def request(
        self,
        path: str,
        method: str = "GET",
        body=None,
        headers=None,
        timeout: float = 30.0,
    ):
        """One request on a fresh connection: (status, headers, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(
                method,
                path,
                body=body,
                headers={"Connection": "close", **(headers or {})},
            )
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def ping_pid(self) -> int:
        status, _, body = self.request("/v1/ping")
        assert status == 200, body
        return json.loads(body)["pid"]


def write_config(
    tmp_path: Path, workers: int, extra: str = "", paste_text: str | None = None
) -> Path:
    """The config file, and the paste file: ``paste_text``, or
    :func:`paste_for_tests`."""
    paste = tmp_path / "api-paste.ini"
    paste.write_text(paste_for_tests() if paste_text is None else paste_text)
    conf = tmp_path / "wsgisvc.conf"
    conf.write_text(
        "[DEFAULT]\n"
        "osapi_listen = 127.0.0.1\n"
        "osapi_listen_port = 0\n"
        f"osapi_workers = {workers}\n"
        f"api_paste_config = {paste}\n"
        f"state_path = {tmp_path}\n"  # the services table's SQLite file, per test
        "graceful_shutdown_timeout = 30\n" + extra
    )
    return conf


def start_api(
    tmp_path: Path,
    conf: Path,
    *args: str,
    command: list[str] | None = None,
    backend: str | None = None,
    env: dict | None = None,
    pass_fds: tuple[int, ...] = (),
) -> tuple[subprocess.Popen, Path]:
    """Start the binary, or ``command`` (not waiting for anything), on
    ``backend`` (default: the environment's), with ``env`` added to its
    environment and ``pass_fds`` open in it; the caller kills its group."""
    log_path = tmp_path / "api.log"
    child_env = {"PYTHONPATH": str(ROOT), **(env or {})}
    if backend:
        child_env["WSGISVC_BACKEND"] = backend
    proc = spawn(
        [*(command or [BINARY]), "--config-file", str(conf), *args],
        log_path,
        env=child_env,
        cwd=tmp_path,
        pass_fds=pass_fds,
    )
    return proc, log_path


@contextlib.contextmanager
def api_server(
    tmp_path: Path,
    workers: int = 2,
    extra: str = "",
    command: list[str] | None = None,
    backend: str | None = None,
    env: dict | None = None,
    pass_fds: tuple[int, ...] = (),
    paste_text: str | None = None,
):
    """A started wsgisvc-api (or ``command``, on ``backend``) whose workers all
    answer; killed on exit."""
    conf = write_config(tmp_path, workers, extra, paste_text)
    proc, log_path = start_api(
        tmp_path, conf, command=command, backend=backend, env=env, pass_fds=pass_fds
    )
    api = Api(proc, log_path)
    try:

        def listening():
            assert proc.poll() is None, f"wsgisvc-api exited:\n{api.log()}"
            return LISTENING.search(api.log())

        match = wait_for(listening, timeout=30)
        api.scheme, api.port = match.group(1), int(match.group(2))
        if workers > 1:
            wait_for(lambda: len(api.workers()) == workers, timeout=30)
        if api.scheme == "http":
            wait_for(_answers(api), timeout=30)
        yield api
    finally:
        kill_group(proc)


def _answers(api: Api):
    def check():
        try:
            return api.request("/v1/ping", timeout=5)[0] == 200
        except OSError:
            return False

    return check
