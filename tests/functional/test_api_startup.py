"""Start-up errors of wsgisvc-api: one clear line, exit status 1, no traceback.

The line is logged (oslo.log writes to stdout here) and written to stderr;
the tests read both from one file.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.functional._svc_util import database
from tests.functional._wsgi_util import api_server, start_api, write_config
from tests.helpers import BIN, run_in_session


def _start_and_fail(tmp_path, conf, timeout: float = 60) -> str:
    proc, log_path = start_api(tmp_path, conf)
    try:
        assert proc.wait(timeout=timeout) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text()
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if "cannot start" in line]
    [on_stderr] = [line for line in lines if line.startswith("wsgisvc-api cannot")]
    [logged] = [line for line in lines if line is not on_stderr]
    assert logged.endswith(f"ERROR wsgisvc.cmd [-] {on_stderr}"), output
    assert "started worker" not in output  # nothing forked
    return on_stderr


def _replace(conf, old: str, new: str) -> None:
    conf.write_text(conf.read_text().replace(old, new))


@pytest.mark.timeout(60)
def test_missing_paste_file(tmp_path):
    conf = write_config(tmp_path, workers=1)
    (tmp_path / "api-paste.ini").unlink()
    line = _start_and_fail(tmp_path, conf)
    assert "paste configuration file" in line and "api-paste.ini" in line


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
    """An explicit [database] connection is the operator's to migrate: a
    missing schema is one line naming the fix; after it the API starts."""
    with database(backend, tmp_path) as url:
        extra = f"[database]\nconnection = {url}\n"
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
            tmp_path, workers=2, extra=f"[database]\nconnection = {url}\n"
        )
        line = _start_and_fail(tmp_path, conf)
    assert "listening on" not in (tmp_path / "api.log").read_text()  # nothing bound
    assert line.endswith(
        "is at 0000, this release needs schema 0001: run `wsgisvc-manage db sync`"
    )
