"""wsgisvc's options share a service's CONF: a cinder-api-like binary whose
global CONF holds its own definitions of wsgisvc's names, oslo.db's and
oslo.service's (registered before wsgisvc's, or after them) starts
``WSGIService("osapi_volume")``, and the value the operator put in the file
for each shared name is the one wsgisvc acts on."""

import http.client
import re
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.helpers import PYTHON, children, kill_group, spawn, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("order", ["first", "last"])
def test_shared_names_take_the_files_values(tmp_path, backend, order):
    paste = tmp_path / "api-paste.ini"
    paste.write_text(
        "[app:osapi_volume]\n"
        "paste.app_factory = tests.functional._wsgi_testapp:factory\n"
    )
    state = tmp_path / "state"
    conf = tmp_path / "cinder.conf"
    conf.write_text(
        "[DEFAULT]\n"
        "host = shared-host\n"
        f"state_path = {state}\n"
        "report_interval = 1\n"
        "osapi_volume_listen = 127.0.0.1\n"
        "osapi_volume_listen_port = 0\n"
        "osapi_volume_workers = 3\n"
        f"api_paste_config = {paste}\n"
        "wsgi_log_format = SHARED %(status_code)s\n"
        "wsgi_default_pool_size = 7\n"
        "max_header_line = 300\n"
        "graceful_shutdown_timeout = 20\n"
        "[database]\n"
        f"connection = sqlite:///{tmp_path}/cinder.sqlite\n"
    )
    log_path = tmp_path / "cinder-api.log"
    proc = spawn(
        [PYTHON, "-m", "tests.functional._shared_conf_target", order]
        + ["--config-file", str(conf)],
        log_path,
        env={"PYTHONPATH": str(ROOT), "WSGISVC_BACKEND": backend},
        cwd=ROOT,
    )
    try:

        def port():
            assert proc.poll() is None, log_path.read_text()
            found = re.search(
                r"osapi_volume listening on http://127\.0\.0\.1:(\d+)",
                log_path.read_text(),
            )
            return found and int(found.group(1))

        listening = wait_for(port, timeout=30)
        wait_for(lambda: len(children(proc.pid)) == 3, timeout=30)

        def get(path, headers=None):
            conn = http.client.HTTPConnection("127.0.0.1", listening, timeout=10)
            try:
                conn.request("GET", path, headers=headers or {})
                response = conn.getresponse()
                return response.status, response.read()
            finally:
                conn.close()

        status, body = get("/pool")
        assert status == 200 and b'"pool_size": 7' in body, body
        assert get("/pool", {"X-Long": "x" * 400})[0] == 431
        wait_for(lambda: "SHARED 200" in log_path.read_text())

        def reports():  # the API's row, in the state_path's SQLite file
            try:
                with sqlite3.connect(state / "wsgisvc.sqlite") as db:
                    return db.execute(
                        "SELECT report_count FROM services WHERE host = ? "
                        "AND \"binary\" = 'wsgisvc-osapi_volume'",
                        ("shared-host",),
                    ).fetchone()
            except sqlite3.OperationalError:  # not created yet
                return None

        wait_for(lambda: (reports() or [0])[0] >= 3, timeout=20)  # every 1 s
        assert not (tmp_path / "cinder.sqlite").exists()  # the service's own DB
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()
    finally:
        kill_group(proc)
