"""Start-up errors: one root, the old names kept, option values checked at once."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from wsgisvc import config, errors, registry, service, sslutils, wsgi
from wsgisvc.sample.manager import WorkerManager


@pytest.mark.parametrize(
    "error",
    [
        wsgi.StartupError,
        wsgi.BindError,
        wsgi.PasteConfigNotFound,
        wsgi.PasteAppNotFound,
        wsgi.PasteLoadError,
        sslutils.TLSConfigError,
        registry.DatabaseSyncError,
        registry.SchemaNotCurrent,
        service.ServiceConfigError,
        errors.ConfigValueError,
    ],
)
def test_every_start_up_error_derives_from_the_one_root(error):
    assert issubclass(error, errors.StartupError)
    assert wsgi.StartupError is errors.StartupError


@pytest.mark.parametrize(
    "line, message",
    [
        ("osapi_workers = 2x", "option osapi_workers: '2x' in {file} is not valid"),
        (
            "wsgi_keep_alive = ture",
            "option wsgi_keep_alive: 'ture' in {file} is not valid: "
            "Unexpected boolean value 'ture'",
        ),
        (
            "[services_table]\nconnect_timeout = 0",
            "option [services_table] connect_timeout: '0' in {file} is not valid: "
            "Should be greater than or equal to 1",
        ),
    ],
)
def test_a_bad_value_is_one_error_naming_option_file_and_value(tmp_path, line, message):
    path = tmp_path / "bad.conf"
    path.write_text(f"[DEFAULT]\n{line}\n")
    with pytest.raises(errors.ConfigValueError) as raised:
        config.parse_args(["prog", "--config-file", str(path)], conf=cfg.ConfigOpts())
    assert message.format(file=path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_last_file_setting_an_option_is_the_one_named(tmp_path):
    first, second = tmp_path / "a.conf", tmp_path / "b.conf"
    first.write_text("[DEFAULT]\nosapi_workers = 3\n")
    second.write_text("[DEFAULT]\nosapi_workers = three\n")
    argv = ["prog", "--config-file", str(first), "--config-file", str(second)]
    with pytest.raises(errors.ConfigValueError, match=f"'three' in {second}"):
        config.parse_args(argv, conf=cfg.ConfigOpts())


def test_service_arguments_after_manager_are_keyword_only(tmp_path):
    """nova and cinder put different intervals in positions 6 and 7: nothing
    may bind to them by position."""
    conf = cfg.ConfigOpts()
    conf([], default_config_files=[])
    with pytest.raises(TypeError, match="positional"):
        service.Service("host", "wsgisvc-worker", "worker", WorkerManager, 10)
    with pytest.raises(TypeError, match="positional"):
        service.Service.create("host", "wsgisvc-worker", "worker", WorkerManager, 10)
    config.register_opts(conf)
    conf.set_override("state_path", str(tmp_path))
    built = service.Service(
        "host", "wsgisvc-worker", "worker", WorkerManager, report_interval=7, conf=conf
    )
    assert built.report_interval == 7


def test_ssl_overrides_do_not_leak_between_config_objects():
    """[ssl] is registered by name: oslo.config keeps overrides in the group
    object, and a shared OptGroup would carry one ConfigOpts' into another."""
    first, second = cfg.ConfigOpts(), cfg.ConfigOpts()
    for conf in (first, second):
        sslutils.register_opts(conf)
        conf([], default_config_files=[])
    first.set_override("cert_file", "/first.pem", group="ssl")
    assert first.ssl.cert_file == "/first.pem"
    assert second.ssl.cert_file is None
    assert not sslutils.is_enabled(second)


@pytest.mark.parametrize("dir_first", [True, False], ids=["dir-first", "file-first"])
def test_the_file_named_is_the_one_oslo_config_took_with_a_config_dir(
    tmp_path, dir_first
):
    """oslo.config parses --config-file and --config-dir in the order of the
    command line, the two together: the later one wins, and is named."""
    directory = tmp_path / "etc"
    directory.mkdir()
    in_dir, alone = directory / "wsgisvc.conf", tmp_path / "other.conf"
    good, bad = (in_dir, alone) if dir_first else (alone, in_dir)
    good.write_text("[DEFAULT]\nosapi_workers = 3\n")
    bad.write_text("[DEFAULT]\nosapi_workers = three\n")
    flags = [["--config-dir", str(directory)], ["--config-file", str(alone)]]
    argv = ["prog", *(sum(flags if dir_first else flags[::-1], []))]
    with pytest.raises(errors.ConfigValueError) as raised:
        config.parse_args(argv, conf=cfg.ConfigOpts())
    assert f"option osapi_workers: 'three' in {bad} is not valid" in str(raised.value)


class _ManagerWithOptions(WorkerManager):
    """A manager registering an option of its own as it is built."""

    def __init__(self, host, *, conf, **kwargs):
        conf.register_opt(cfg.IntOpt("batch_size", default=10), group="myworker")
        super().__init__(host, conf=conf, **kwargs)


def test_an_option_a_manager_registers_is_checked_when_the_service_is_built(
    tmp_path,
):
    path = tmp_path / "worker.conf"
    path.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n[myworker]\nbatch_size = x\n")
    conf = config.parse_args(
        ["prog", "--config-file", str(path)], conf=cfg.ConfigOpts()
    )
    with pytest.raises(errors.ConfigValueError) as raised:
        service.Service("host", "myworker", "myworker", _ManagerWithOptions, conf=conf)
    assert str(raised.value).startswith(
        f"option [myworker] batch_size: 'x' in {path} is not valid"
    )
