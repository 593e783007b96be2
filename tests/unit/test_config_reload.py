"""config.Reloader: a reload checks the whole new configuration in a scratch
ConfigOpts first; a broken one leaves the live one as it was, in one line."""

from __future__ import annotations

import logging

import pytest
from oslo_config import cfg

from wsgisvc import config


@pytest.fixture
def conf_file(tmp_path):
    path = tmp_path / "wsgisvc.conf"
    path.write_text("[DEFAULT]\nosapi_workers = 2\nwsgi_default_pool_size = 5\n")
    return path


@pytest.fixture
def conf(conf_file):
    parsed = cfg.ConfigOpts()
    config.parse_args(["prog", "--config-file", str(conf_file)], conf=parsed)
    return parsed


@pytest.fixture
def logged(caplog):
    caplog.set_level(logging.INFO, logger="wsgisvc.config")
    return lambda level: [r.getMessage() for r in caplog.records if r.levelno == level]


@pytest.mark.parametrize(
    "broken, why",
    [
        ("osapi_workers = two", "option osapi_workers: 'two' in {file} is not valid"),
        ("osapi_workers 2", "Failed to parse {file}"),
        ("[services_table]\nconnect_timeout = 0", "option [services_table] connect"),
    ],
)
def test_a_broken_file_is_refused_and_the_live_values_stay(
    conf, conf_file, logged, broken, why
):
    reloader = config.Reloader(conf)
    conf_file.write_text(f"[DEFAULT]\nwsgi_default_pool_size = 7\n{broken}\n")
    assert reloader.reload() is None
    assert (conf.osapi_workers, conf.wsgi_default_pool_size) == (2, 5)
    config.check_values(conf)  # what a worker's report reads: all still good
    (line,) = logged(logging.ERROR)
    assert line.startswith("reload refused: " + why.format(file=conf_file))
    assert line.endswith(
        f"; still serving the configuration loaded at {reloader.loaded_at}"
    )
    assert not logged(logging.INFO)


def test_a_removed_file_is_refused(conf, conf_file, logged):
    conf_file.unlink()
    assert config.Reloader(conf).reload() is None
    assert conf.osapi_workers == 2
    (line,) = logged(logging.ERROR)
    assert f"reload refused: Failed to find some config files: {conf_file}" in line


def test_a_good_file_applies_and_what_changed_is_one_line(conf, conf_file, logged):
    conf_file.write_text(
        "[DEFAULT]\nosapi_workers = 3\nwsgi_default_pool_size = 5\n"
        "[services_table]\nconnection = sqlite:////secret/path\n"
    )
    changes = config.Reloader(conf).reload()
    assert changes == {
        "osapi_workers": (2, 3),
        "[services_table] connection": (None, "sqlite:////secret/path"),
    }
    assert conf.osapi_workers == 3
    assert logged(logging.INFO) == [
        "reload: osapi_workers: 2 -> 3, [services_table] connection: None -> ****"
    ]


def test_nothing_changed_says_so(conf, logged):
    assert config.Reloader(conf).reload() == {}
    assert logged(logging.INFO) == ["reload: no option changed"]


def test_the_launchers_own_check_refuses_too(conf, conf_file, logged):
    conf_file.write_text("[DEFAULT]\nosapi_workers = 0\n")
    checked = config.Reloader(conf).reload(
        check=lambda scratch: config.workers(scratch, "osapi_workers")
    )
    assert checked is None
    assert conf.osapi_workers == 2
    (line,) = logged(logging.ERROR)
    assert line.startswith("reload refused: osapi_workers must be at least 1, got 0")


def test_overrides_and_command_line_options_are_checked_as_the_live_ones(
    conf_file, logged
):
    live = cfg.ConfigOpts()
    argv = ["prog", "--config-file", str(conf_file), "--debug"]
    config.parse_args(argv, conf=live)
    live.set_override("osapi_workers", 4)
    conf_file.write_text("[DEFAULT]\nwsgi_default_pool_size = 6\n")
    assert config.Reloader(live).reload() == {"wsgi_default_pool_size": (5, 6)}
    assert (live.osapi_workers, live.debug) == (4, True)
