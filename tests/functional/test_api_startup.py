"""Start-up errors of wsgisvc-api: one clear line, exit status 1, no traceback."""

from __future__ import annotations

import socket

import pytest

from tests.functional._wsgi_util import start_api, write_config


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
    [line] = [line for line in output.splitlines() if "cannot start" in line]
    return line


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
