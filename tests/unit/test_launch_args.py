"""launch() refuses what it cannot run before it forks or installs anything."""

import pytest
from oslo_config import cfg

from wsgisvc import launcher, service


class Recorder(service.ServiceBase):
    def __init__(self):
        self.calls = []

    def start(self):
        self.calls.append("start")

    def stop(self):
        self.calls.append("stop")

    def wait(self):
        self.calls.append("wait")

    def reset(self):
        self.calls.append("reset")


@pytest.mark.parametrize("workers", [0, -1, -8])
def test_workers_below_one_is_a_value_error_naming_it(workers):
    with pytest.raises(ValueError, match=f"workers must be at least 1, got {workers}"):
        service.launch(cfg.ConfigOpts(), Recorder(), workers=workers)


@pytest.mark.parametrize("workers", ["2", 2.0, True])
def test_non_integer_workers_is_a_type_error(workers):
    with pytest.raises(TypeError, match="workers must be an integer or an option"):
        service.launch(cfg.ConfigOpts(), Recorder(), workers=workers)


def test_a_service_must_be_a_service_base():
    with pytest.raises(TypeError, match="got object"):
        service.launch(cfg.ConfigOpts(), object())


def test_unknown_restart_method():
    with pytest.raises(ValueError, match="restart_method"):
        service.ProcessLauncher(cfg.ConfigOpts(), restart_method="bounce")


def test_services_stop_calls_each_stop_once():
    services = launcher.Services(on_change=lambda: None)
    a, b = Recorder(), Recorder()
    services.services += [a, b]
    services.stop()
    services.stop()
    assert a.calls == ["stop"] and b.calls == ["stop"]


def test_serve_twice_raises(monkeypatch):
    monkeypatch.setattr(service, "_launcher", object())
    with pytest.raises(RuntimeError, match="once per process"):
        service.serve(Recorder())
