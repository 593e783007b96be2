"""An idle RPC server stops at once, and closes its AMQP channel cleanly.

oslo.messaging's rabbit listener waits for the broker up to 5 s at a time
when idle and notices a stop only between two waits; closing then deleted the
fanout queue under a live consumer ("Received method (60, 30) during closing
channel"). rpc.RPCServer.stop() cancels the consumers first (see rpc.py).
"""

import inspect
import logging
import queue
import signal
import time
import uuid

import futurist
import pytest
from futurist import _utils as futurist_utils

from tests.functional._worker_util import worker_process
from tests.functional.test_rpc_inprocess import client, conf, servers  # noqa: F401
from wsgisvc import rpc

pytestmark = pytest.mark.timeout(90)

STOP_LIMIT = 1.0
AMQP_CLOSE_WARNING = "(60, 30)"


def test_reaches_the_internals_it_relies_on(servers, client):  # noqa: F811
    """Fails loudly when an oslo.messaging or futurist upgrade moves what
    rpc._cancel_consumers and rpc._wake_executor_threads use."""
    server, _ = servers("h-internals")
    connection = rpc._listener_connection(server._server)
    assert connection is not None, "oslo.messaging's rabbit listener moved"
    assert len(connection._consumers) == 3  # topic, topic.host, fanout
    assert connection.channel is not None
    client.call({}, "echo", server="h-internals", payload=1)  # spins a thread up
    executor = server._server._work_executor
    assert isinstance(executor, futurist.ThreadPoolExecutor)
    assert executor.num_workers >= 1
    assert isinstance(executor._work_queue, queue.Queue)
    assert set(inspect.signature(futurist_utils.WorkItem).parameters) >= {
        "future",
        "fn",
    }


@pytest.mark.parametrize("idle", [0.5, 2.0, 4.0])
def test_idle_server_stops_within_a_second(conf, client, idle, caplog):  # noqa: F811
    caplog.set_level(logging.WARNING, logger="amqp")
    from wsgisvc.sample.manager import WorkerManager

    # A topic of its own: a queue is named by its topic whatever the exchange,
    # so on "worker" another test run's calls could be in flight here.
    topic = f"stop-{uuid.uuid4().hex[:8]}"
    server = rpc.RPCServer(conf, topic, "h-idle", [WorkerManager("h", conf=conf)])
    server.start()
    caller = rpc.RPCClient(conf, topic, timeout=15, transport=client.transport)
    try:
        assert caller.call({}, "echo", payload="ready")["payload"] == "ready"
        time.sleep(idle)  # the listener's wait for the broker grows while idle
    finally:
        begin = time.monotonic()
        server.stop()
        server.wait()
        took = time.monotonic() - begin
    assert took < STOP_LIMIT, f"idle RPC server took {took:.2f} s to stop"
    assert AMQP_CLOSE_WARNING not in caplog.text


def test_worker_binary_stops_within_a_second_without_amqp_warning(tmp_path):
    with worker_process(tmp_path, workers=2) as worker:
        time.sleep(4.0)  # idle, as an operator's workers are most of the time
        begin = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(timeout=30) == 0, worker.log()
        took = time.monotonic() - begin
        log = worker.log()
    assert took < STOP_LIMIT, f"wsgisvc-worker took {took:.2f} s to stop:\n{log}"
    assert AMQP_CLOSE_WARNING not in log
