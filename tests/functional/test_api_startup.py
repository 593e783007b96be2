"""Start-up errors of wsgisvc-api: one clear line, exit status 1, no traceback.

The line is logged (oslo.log writes to stdout unless --log-file) and, when the
log did not reach stderr's file already, written to stderr: once where a user
reads it (a terminal, ``2>&1``, a pipe, with or without a log file).
"""

from __future__ import annotations

import http.client
import os
import pty
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.functional._svc_util import database
from tests.functional._wsgi_util import (
    BINARY,
    LISTENING,
    ROOT,
    api_server,
    start_api,
    write_config,
)
from tests.helpers import BIN, kill_group, run_in_session, wait_for


def _start_and_fail(
    tmp_path, conf, timeout: float = 60, backend: str | None = None
) -> str:
    proc, log_path = start_api(tmp_path, conf, backend=backend)
    try:
        assert proc.wait(timeout=timeout) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text()
    assert "Traceback" not in output, output
    # stdout and stderr share the file: the logged line, and no echo of it
    [logged] = [line for line in output.splitlines() if "cannot start" in line]
    assert " ERROR wsgisvc.cmd [-] wsgisvc-api cannot start: " in logged, output
    assert "started worker" not in output  # nothing forked
    return logged.partition(" [-] ")[2]


def _replace(conf, old: str, new: str) -> None:
    conf.write_text(conf.read_text().replace(old, new))


@pytest.mark.timeout(60)
def test_missing_paste_file(tmp_path):
    conf = write_config(tmp_path, workers=1)
    (tmp_path / "api-paste.ini").unlink()
    line = _start_and_fail(tmp_path, conf)
    assert "paste configuration file" in line and "api-paste.ini" in line


@pytest.mark.timeout(60)
def test_a_database_driver_not_installed_names_the_extra(tmp_path):
    """A services table URL whose driver is missing (mysqlclient, not among
    wsgisvc's extras) is one line saying what to install, as is one of an
    extra's driver (psycopg, PyMySQL) in an install without the extra."""
    url = "mysql+mysqldb://root@127.0.0.1/test"
    conf = write_config(
        tmp_path, workers=1, extra=f"[services_table]\nconnection = {url}\n"
    )
    line = _start_and_fail(tmp_path, conf)
    assert f"connection {url} needs the driver 'MySQLdb'" in line
    assert (
        "or mysql+pymysql:// (pip install 'wsgisvc-server[postgresql]' or "
        "'wsgisvc-server[mysql]')" in line
    )


@pytest.mark.timeout(60)
def test_unknown_app_name(tmp_path):
    conf = write_config(tmp_path, workers=1)
    paste = tmp_path / "api-paste.ini"
    _replace(paste, "[composite:osapi]", "[composite:otherapi]")
    line = _start_and_fail(tmp_path, conf)
    assert "no application 'osapi'" in line and str(paste) in line


@pytest.mark.timeout(60)
def test_port_in_use(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        conf = write_config(tmp_path, workers=1)
        _replace(conf, "osapi_listen_port = 0", f"osapi_listen_port = {port}")
        line = _start_and_fail(tmp_path, conf)
    finally:
        taken.close()
    assert f"127.0.0.1:{port}" in line and "in use" in line


@pytest.mark.timeout(60)
def test_unusable_tls_key(tmp_path):
    (tmp_path / "bogus.key").write_text("not a key\n")
    (tmp_path / "bogus.pem").write_text("not a certificate\n")
    extra = (
        "osapi_use_ssl = true\n[ssl]\n"
        f"cert_file = {tmp_path / 'bogus.pem'}\nkey_file = {tmp_path / 'bogus.key'}\n"
    )
    line = _start_and_fail(tmp_path, write_config(tmp_path, workers=1, extra=extra))
    assert "bogus.key" in line


@pytest.mark.timeout(60)
def test_missing_tls_key(tmp_path):
    extra = (
        "osapi_use_ssl = true\n[ssl]\n"
        f"cert_file = {tmp_path / 'none.pem'}\nkey_file = {tmp_path / 'none.key'}\n"
    )
    line = _start_and_fail(tmp_path, write_config(tmp_path, workers=1, extra=extra))
    assert "none.pem" in line and "does not exist" in line


@pytest.mark.timeout(60)
def test_workers_below_one_names_the_option(tmp_path):
    conf = write_config(tmp_path, workers=0)
    line = _start_and_fail(tmp_path, conf)
    assert "osapi_workers must be at least 1" in line


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "option, value, why",
    [
        ("osapi_workers", "2x", "invalid literal for int() with base 10: '2x'"),
        ("wsgi_keep_alive", "ture", "Unexpected boolean value 'ture'"),
        ("pid_file", "/no-such-dir/api.pid", "no directory /no-such-dir"),
    ],
)
def test_a_bad_option_value_is_one_line_before_binding(tmp_path, option, value, why):
    conf = write_config(tmp_path, workers=2, extra=f"{option} = {value}\n")
    line = _start_and_fail(tmp_path, conf)
    assert "listening on" not in (tmp_path / "api.log").read_text()  # nothing bound
    assert line == (
        f"wsgisvc-api cannot start: option {option}: {value!r} in {conf} "
        f"is not valid: {why}"
    )


@pytest.mark.timeout(60)
def test_a_paste_error_spanning_lines_is_folded_into_one(tmp_path):
    conf = write_config(tmp_path, workers=1)
    paste = tmp_path / "api-paste.ini"
    paste.write_text(paste.read_text() + "\nnot an ini line\n")
    line = _start_and_fail(tmp_path, conf)
    assert "api-paste.ini" in line


@pytest.mark.timeout(90)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_configured_database_without_the_schema_is_refused(tmp_path, backend):
    """An explicit [services_table] connection is the operator's to migrate: a
    missing schema is one line naming the fix; after it the API starts."""
    with database(backend, tmp_path) as url:
        extra = f"[services_table]\nconnection = {url}\n"
        conf = write_config(tmp_path, workers=1, extra=extra)
        line = _start_and_fail(tmp_path, conf)
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        assert line == (
            f"wsgisvc-api cannot start: database {shown} has no services table, "
            "this release needs schema 0001: run `wsgisvc-manage db sync`"
        )
        manage = [str(Path(BIN) / "wsgisvc-manage"), "--config-file", str(conf)]
        status, output = run_in_session([*manage, "db", "sync"], timeout=60)
        assert status == 0, output
        (tmp_path / "synced").mkdir()  # a log of its own
        with api_server(tmp_path / "synced", workers=1, extra=extra) as api:
            assert api.ping_pid()


def _read_all(fd: int) -> bytes:
    """Everything written to a pipe or a pty until its writers are gone."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the pty's last writer closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _run_wired(
    args: list[str], stderr_kind: str, shared: bool, backend: str
) -> tuple[str, str]:
    """Run the binary on ``backend`` with stderr on a new pty or pipe, and
    stdout on the same one (``shared``: a terminal, ``2>&1``) or a pipe of its
    own; (what stderr's file got, what stdout's pipe got)."""
    reader, writer = pty.openpty() if stderr_kind == "pty" else os.pipe()
    out_reader, out_writer = (reader, writer) if shared else os.pipe()
    proc = subprocess.Popen(
        [BINARY, *args],
        stdin=subprocess.DEVNULL,
        stdout=out_writer,
        stderr=writer,
        start_new_session=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT), WSGISVC_BACKEND=backend),
    )
    try:
        os.close(writer)
        if not shared:
            os.close(out_writer)
            stdout = _read_all(out_reader).decode()
        else:
            stdout = ""
        stderr = _read_all(reader).decode()
        assert proc.wait(timeout=60) == 1, stderr + stdout
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return stderr, stdout


def _cannot_start(text: str) -> list[str]:
    return [line for line in text.splitlines() if "cannot start" in line]


WIRINGS = {
    "terminal": ("pty", True),
    "stderr-pty": ("pty", False),
    "2>&1": ("pipe", True),
    "pipes": ("pipe", False),
}
LOG_TO = {"log-stdout": False, "log-file": True}


def _wired_case(backend: str, error: str, wiring: str, log_to: str):
    return pytest.param(
        backend,
        error,
        *WIRINGS[wiring],
        LOG_TO[log_to],
        id=f"{backend}-{error}-{wiring}-{log_to}",
    )


# Every combination on the default backend; on threads, each wiring once,
# each error and each log destination twice (the path is the same code).
WIRED_CASES = [
    _wired_case("eventlet", error, wiring, log_to)
    for error in ("missing-paste", "bad-option")
    for wiring in WIRINGS
    for log_to in LOG_TO
] + [
    _wired_case("threading", "missing-paste", "terminal", "log-stdout"),
    _wired_case("threading", "bad-option", "stderr-pty", "log-file"),
    _wired_case("threading", "bad-option", "2>&1", "log-stdout"),
    _wired_case("threading", "missing-paste", "pipes", "log-file"),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend, error, stderr_kind, shared, log_file", WIRED_CASES)
def test_startup_error_is_one_line_on_stderr(
    tmp_path, backend, error, stderr_kind, shared, log_file
):
    conf = write_config(tmp_path, workers=1)
    if error == "missing-paste":
        (tmp_path / "api-paste.ini").unlink()
        why = "paste configuration file"
    else:
        _replace(conf, "osapi_listen_port = 0", "osapi_listen_port = abc")
        why = "option osapi_listen_port: 'abc'"
    args = ["--config-file", str(conf)]
    log = tmp_path / "api.log"
    if log_file:
        args += ["--log-file", str(log)]

    stderr, stdout = _run_wired(args, stderr_kind, shared, backend)

    [line] = _cannot_start(stderr)
    assert why in line, stderr
    assert "Traceback" not in stderr + stdout
    if log_file:
        [logged] = _cannot_start(log.read_text())
        assert logged.endswith(line.partition(" [-] ")[2] or line), logged
        assert not _cannot_start(stdout)
    elif not shared:
        [logged] = _cannot_start(stdout)  # oslo.log's line, the echo on stderr
        assert logged.endswith(f"ERROR wsgisvc.cmd [-] {line}"), stdout


@pytest.mark.timeout(90)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_a_configured_database_behind_is_refused_before_binding(tmp_path, backend):
    """The light check (the DB-API driver reading alembic_version) refuses a
    schema at an older revision, before anything binds or forks."""
    with database(backend, tmp_path) as url:
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.execute(
                sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32))")
            )
            connection.execute(sa.text("INSERT INTO alembic_version VALUES ('0000')"))
        engine.dispose()
        conf = write_config(
            tmp_path, workers=2, extra=f"[services_table]\nconnection = {url}\n"
        )
        line = _start_and_fail(tmp_path, conf)
    assert "listening on" not in (tmp_path / "api.log").read_text()  # nothing bound
    assert line.endswith(
        "is at 0000, this release needs schema 0001: run `wsgisvc-manage db sync`"
    )


@pytest.mark.timeout(90)
@pytest.mark.parametrize("backend", ["eventlet", "threading"])
def test_the_log_goes_to_stdout_and_stderr_stays_quiet(tmp_path, backend):
    """oslo.log's default, kept: log lines on stdout, nothing on stderr from
    a start to a clean stop (doc/source/systemd.rst says so)."""
    conf = write_config(tmp_path, workers=2)
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [BINARY, "--config-file", str(conf)],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=dict(
                os.environ,
                PYTHONPATH=str(ROOT),
                WSGISVC_BACKEND=backend,
                PYTHONUNBUFFERED="1",
            ),
        )
    try:
        port = wait_for(lambda: LISTENING.search(out.read_text()), timeout=60)[2]
        wait_for(lambda: _answers_ping(int(port)), timeout=60, what="a worker serving")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        kill_group(proc)
    assert "INFO wsgisvc" in out.read_text()
    assert err.read_text() == ""


def _answers_ping(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/v1/ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
