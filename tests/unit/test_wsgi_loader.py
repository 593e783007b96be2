"""wsgisvc.wsgi.Loader: finding the paste file and naming what is missing."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from tests.unit._wsgi_inproc import make_conf
from wsgisvc import config, wsgi

PASTE = """
[app:hello]
paste.app_factory = wsgisvc.sample.api:versions_factory
"""


def test_missing_paste_file_names_the_file(tmp_path):
    conf = make_conf(api_paste_config=str(tmp_path / "nope.ini"))
    with pytest.raises(wsgi.PasteConfigNotFound, match="nope.ini"):
        wsgi.Loader(conf)


def test_unknown_app_names_the_app_and_the_file(tmp_path):
    paste = tmp_path / "api-paste.ini"
    paste.write_text(PASTE)
    loader = wsgi.Loader(make_conf(api_paste_config=str(paste)))
    with pytest.raises(wsgi.PasteAppNotFound) as info:
        loader.load_app("osapi")
    assert "'osapi'" in str(info.value) and str(paste) in str(info.value)


def test_errors_are_distinct_startup_errors():
    assert not issubclass(wsgi.PasteConfigNotFound, wsgi.PasteAppNotFound)
    assert not issubclass(wsgi.PasteAppNotFound, wsgi.PasteConfigNotFound)
    assert issubclass(wsgi.PasteAppNotFound, wsgi.StartupError)


def test_relative_name_is_found_next_to_the_config_files(tmp_path):
    (tmp_path / "api-paste.ini").write_text(PASTE)
    conf_file = tmp_path / "wsgisvc.conf"
    conf_file.write_text("[DEFAULT]\napi_paste_config = api-paste.ini\n")
    conf = cfg.ConfigOpts()
    config.register_opts(conf)
    conf(
        ["--config-dir", str(tmp_path)],
        project="wsgisvc-test",
        default_config_files=[],
        default_config_dirs=[],
    )
    loader = wsgi.Loader(conf)
    assert loader.config_path == str(tmp_path / "api-paste.ini")
    assert callable(loader.load_app("hello"))


def test_the_shipped_paste_file_loads_osapi():
    conf = make_conf(api_paste_config=str(config_root() / "etc" / "api-paste.ini"))
    assert callable(wsgi.Loader(conf).load_app("osapi"))


def config_root():
    import pathlib

    return pathlib.Path(__file__).resolve().parents[2]
