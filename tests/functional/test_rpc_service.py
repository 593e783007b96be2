"""service.Service in this process: create() defaults, basic_config_check(),
the start order, periodic tasks, heartbeat, stop/wait/kill, reset()."""

import logging
import sys
import uuid

import pytest
from oslo_config import cfg

from tests.functional._svc_util import RABBIT_URL, require
from tests.helpers import green_wait_for
from wsgisvc import manager, opts, registry, rpc, service
from wsgisvc.periodic_task import periodic_task
from wsgisvc.registry import api
from wsgisvc.sample.manager import WorkerManager

pytestmark = pytest.mark.timeout(60)


def make_conf(tmp_path, extra=""):
    path = tmp_path / "svc.conf"
    path.write_text(
        "[DEFAULT]\n"
        f"transport_url = {RABBIT_URL}\n"
        f"control_exchange = wsgisvc_test_{uuid.uuid4().hex[:10]}\n"
        f"host = host-{uuid.uuid4().hex[:8]}\n"
        f"state_path = {tmp_path / 'state'}\n"
        "report_interval = 1\n"
        "periodic_interval = 1\n"
        "periodic_fuzzy_delay = 0\n" + extra
    )
    conf = cfg.ConfigOpts()
    # worker_manager: wsgisvc-worker's option (its binary registers it)
    opts.register(conf, opts.sample_worker_opts)
    conf(["--config-file", str(path)], project="wsgisvc-test", default_config_files=[])
    return conf


class HookedManager(manager.Manager):
    """Records its hooks, and what was true when each ran."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.events = []
        self.runs = 0

    def init_host(self):
        self.events.append("init_host")

    def pre_start_hook(self):
        self.events.append("pre_start_hook")

    def post_start_hook(self):
        # The RPC server consumes already: a call to ourselves round-trips.
        client = rpc.RPCClient(self.conf, "hooked", timeout=10)
        try:
            reply = client.call({}, "hello", server=self.host)
        finally:
            client.close()
        self.events.append(f"post_start_hook:{reply}")

    def cleanup_host(self):
        self.events.append("cleanup_host")

    def reset(self):
        self.events.append("reset")

    def hello(self, ctxt):
        return "hi"

    @periodic_task(spacing=1, run_immediately=True)
    def tick(self, context):
        self.runs += 1


def test_create_fills_defaults_from_argv_and_options(tmp_path, monkeypatch):
    conf = make_conf(tmp_path)
    monkeypatch.setattr(sys, "argv", ["/usr/bin/wsgisvc-worker"])
    svc = service.Service.create(conf=conf)
    assert (svc.binary, svc.topic, svc.host) == ("wsgisvc-worker", "worker", conf.host)
    assert isinstance(svc.manager, WorkerManager)
    assert (svc.report_interval, svc.periodic_interval) == (1, 1)
    assert (svc.periodic_fuzzy_delay, svc.periodic_interval_max) == (0, 300)
    assert svc.periodic_enable is True
    explicit = service.Service.create(
        host="h9", binary="wsgisvc-worker", report_interval=4, conf=conf
    )
    assert (explicit.host, explicit.report_interval) == ("h9", 4)


def test_create_without_a_manager_option_says_which(tmp_path):
    conf = make_conf(tmp_path)
    with pytest.raises(service.ServiceConfigError, match="no option foo_manager"):
        service.Service.create(binary="wsgisvc-foo", conf=conf)
    with pytest.raises(service.ServiceConfigError, match="cannot import manager"):
        service.Service.create(
            binary="wsgisvc-worker", manager="no.such.Mgr", conf=conf
        )


def test_unwritable_state_path_is_refused_clearly(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    conf = make_conf(tmp_path, f"state_path = {blocker}/state\n")
    with pytest.raises(
        service.ServiceConfigError, match="state_path .* cannot be created"
    ):
        service.Service.create(binary="wsgisvc-worker", conf=conf)


def test_short_service_down_time_is_raised_with_a_warning(tmp_path, caplog):
    conf = make_conf(tmp_path, "service_down_time = 5\n")
    with caplog.at_level(logging.WARNING, logger="wsgisvc.service"):
        service.Service.create(binary="wsgisvc-worker", report_interval=10, conf=conf)
    assert conf.service_down_time == 25
    assert "service_down_time 5 s is less than 2.5 x report_interval" in caplog.text


def test_start_order_periodic_heartbeat_stop_and_kill(tmp_path):
    require("127.0.0.1", 5672, "RabbitMQ")
    conf = make_conf(tmp_path)
    registry.prepare_database(conf)
    svc = service.Service(
        conf.host, "wsgisvc-hooked", "hooked", HookedManager, conf=conf
    )
    svc.start()
    try:
        events = svc.manager.events
        assert events == ["init_host", "pre_start_hook", "post_start_hook:hi"]
        assert svc.service_id is not None  # the row came first
        engine = registry.create_engine(conf)
        green_wait_for(lambda: svc.manager.runs >= 2, what="periodic task runs")
        green_wait_for(
            lambda: api.get(engine, svc.service_id).report_count >= 2, what="heartbeats"
        )
    finally:
        svc.stop()
        svc.wait()
    assert events[-1] == "cleanup_host"
    svc.stop()  # idempotent
    svc.wait()
    assert events.count("cleanup_host") == 1

    conf.set_override("report_interval", 3)
    svc.reset()
    assert svc.report_interval == 3 and events[-1] == "reset"

    service_id = svc.service_id
    svc.kill()
    assert api.get(engine, service_id).deleted == service_id
    engine.dispose()


def test_first_periodic_run_waits_a_random_fuzzy_delay(tmp_path, monkeypatch):
    require("127.0.0.1", 5672, "RabbitMQ")
    conf = make_conf(tmp_path, "periodic_fuzzy_delay = 3600\n")
    registry.prepare_database(conf)
    drawn = []

    def uniform(low, high):
        drawn.append((low, high))
        return high  # the longest delay the option allows

    monkeypatch.setattr(service.random, "uniform", uniform)
    svc = service.Service(
        conf.host, "wsgisvc-hooked", "hooked", HookedManager, conf=conf
    )
    svc.start()
    try:
        engine = registry.create_engine(conf)
        green_wait_for(
            lambda: api.get(engine, svc.service_id).report_count >= 2, what="heartbeats"
        )
        engine.dispose()
        assert drawn == [(0, 3600)]
        assert svc.manager.runs == 0  # still inside the delay
    finally:
        svc.stop()
        svc.wait()
