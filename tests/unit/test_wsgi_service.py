"""WSGIService's constructor: options, workers, the real port, the log line."""

from __future__ import annotations

import logging
import os
import pathlib

import pytest

from tests.unit._wsgi_inproc import make_conf
from wsgisvc import opts, service, wsgi

PASTE = str(pathlib.Path(__file__).resolve().parents[2] / "etc" / "api-paste.ini")


def _conf(**overrides):
    conf = make_conf(api_paste_config=PASTE)
    opts.register_wsgi_service_opts(conf, "osapi")
    conf.set_override("osapi_listen", "127.0.0.1")
    for name, value in overrides.items():
        conf.set_override(name, value)
    return conf


def test_binds_in_the_constructor_and_logs_the_real_port(caplog):
    caplog.set_level(logging.INFO, logger="wsgisvc.wsgi")
    server = service.WSGIService("osapi", conf=_conf())
    try:
        assert server.port > 0 and server.port == server.server.port
        assert f"osapi listening on http://127.0.0.1:{server.port}" in caplog.text
        assert server.workers == (os.cpu_count() or 1)
    finally:
        server.stop()


def test_workers_option_is_read():
    server = service.WSGIService("osapi", conf=_conf(osapi_workers=3))
    server.stop()
    assert server.workers == 3


def test_workers_below_one_is_an_error_naming_the_option():
    with pytest.raises(wsgi.StartupError, match="osapi_workers must be at least 1"):
        service.WSGIService("osapi", conf=_conf(osapi_workers=0))


def test_any_name_gets_its_own_options(tmp_path):
    paste = tmp_path / "paste.ini"
    paste.write_text(
        "[app:adminapi]\npaste.app_factory = wsgisvc.sample.api:versions_factory\n"
    )
    conf = make_conf(api_paste_config=str(paste))
    opts.register_wsgi_service_opts(conf, "adminapi")
    conf.set_override("adminapi_listen", "127.0.0.1")
    conf.set_override("adminapi_workers", 1)
    server = service.WSGIService("adminapi", conf=conf)
    server.stop()
    assert server.workers == 1 and server.port > 0


def test_use_ssl_option_without_files_is_a_clear_error():
    from wsgisvc import sslutils

    with pytest.raises(sslutils.TLSConfigError, match="cert_file must be set"):
        service.WSGIService("osapi", conf=_conf(osapi_use_ssl=True))
