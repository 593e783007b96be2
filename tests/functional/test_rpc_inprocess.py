"""RPCServer and RPCClient against the real RabbitMQ, in this process.

oslo.messaging picks its threading executor here (the test process is not
monkey patched); the worker-process tests cover the eventlet executor.
Every test uses its own control exchange, so runs never see each other.
"""

import threading
import time
import uuid

import oslo_messaging as messaging
import pytest
from oslo_config import cfg

from tests.functional._svc_util import RABBIT_URL, require
from tests.helpers import wait_for
from wsgisvc import rpc
from wsgisvc.sample.manager import WorkerManager

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def conf(tmp_path):
    require("127.0.0.1", 5672, "RabbitMQ")
    path = tmp_path / "rpc.conf"
    path.write_text(
        "[DEFAULT]\n"
        f"transport_url = {RABBIT_URL}\n"
        f"control_exchange = wsgisvc_test_{uuid.uuid4().hex[:10]}\n"
        "graceful_shutdown_timeout = 20\n"
    )
    c = cfg.ConfigOpts()
    c(["--config-file", str(path)], project="wsgisvc-test", default_config_files=[])
    return c


@pytest.fixture
def servers(conf):
    started = []

    def start(host, topic="worker"):
        manager = WorkerManager(host, conf=conf)
        server = rpc.RPCServer(conf, topic, host, [manager])
        server.start()
        started.append(server)
        return server, manager

    yield start
    for server in started:
        server.stop()
        server.wait()


@pytest.fixture
def client(conf):
    c = rpc.RPCClient(conf, "worker", timeout=15)
    yield c
    c.close()


def test_call_round_trips(servers, client):
    servers("host-a")
    reply = client.call({}, "echo", payload={"n": 1, "s": "x"})
    assert reply["payload"] == {"n": 1, "s": "x"}
    assert reply["host"] == "host-a"


def test_topic_host_reaches_that_host(servers, client):
    servers("host-a")
    servers("host-b")
    for host in ("host-a", "host-b", "host-a"):
        assert client.call({}, "echo", server=host, payload=1)["host"] == host


def test_call_to_an_absent_host_times_out(servers, client):
    servers("host-a")
    with pytest.raises(messaging.MessagingTimeout):
        client.call({}, "echo", server="nobody-here", timeout=1, payload=1)


def test_fanout_cast_reaches_every_server(servers, client):
    managers = [servers(host)[1] for host in ("host-a", "host-b", "host-c")]
    client.cast({}, "ping", fanout=True, token="t1")
    wait_for(lambda: all(m.pings == ["t1"] for m in managers))


def test_lifecycle_hooks_are_not_rpc_endpoints(servers, client):
    servers("host-a")
    for method in ("init_host", "cleanup_host", "reset", "periodic_tasks", "_whoami"):
        with pytest.raises(messaging.RemoteError, match="NoSuchMethod"):
            client.call({}, method)


class TellingManager(WorkerManager):
    """Says when a ``sleep`` call has arrived, so the test stops the server
    while the call is known to be in flight."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sleeping = threading.Event()

    def sleep(self, ctxt, ms):
        self.sleeping.set()
        return super().sleep(ctxt, ms)


def test_stop_lets_an_in_flight_call_finish(conf, client):
    manager = TellingManager("host-a", conf=conf)
    server = rpc.RPCServer(conf, "worker", "host-a", [manager])
    server.start()
    result = {}

    def slow_call():
        result["reply"] = client.call({}, "sleep", ms=1500)

    caller = threading.Thread(target=slow_call)
    caller.start()
    assert manager.sleeping.wait(15), "the call never reached the server"
    server.stop()
    server.wait()
    caller.join(15)
    assert result["reply"]["slept_ms"] == 1500


def test_unreachable_broker_fails_fast_with_retry_zero(tmp_path):
    # A port nobody listens on: the call must fail now, not after the timeout
    # (and not hang in oslo.messaging's reply-queue reconnect loop).
    path = tmp_path / "dead.conf"
    path.write_text("[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:9/\n")
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(path)], project="wsgisvc-test", default_config_files=[])
    client = rpc.RPCClient(conf, "worker", timeout=30, retry=0)
    started = time.monotonic()
    with pytest.raises(rpc.BrokerUnreachable):
        client.call({}, "echo", payload=1)
    assert time.monotonic() - started < 10
    client.close()


def test_broker_reachable(conf):
    assert rpc.broker_reachable(conf)
