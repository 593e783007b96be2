"""The broker and the database going away under a running wsgisvc-worker.

A TCP proxy in the test sits between the worker and the real server; it is
cut (listener closed, connections shut) and restored. The worker must never
exit, must log the loss once and the recovery once (per worker process), and
its heartbeat / RPC must resume. The measured times are printed (pytest -s).
"""

import datetime
import time

import pytest

from tests.functional._svc_util import TcpProxy, require
from tests.functional._worker_util import worker_behind_a_db_proxy, worker_process
from tests.helpers import alive, wait_for

BROKER_LOST = "Lost the message broker"
BROKER_BACK = "Message broker rabbit://127.0.0.1:{port} reachable again"
DB_LOST = "Lost the database while reporting state"
DB_BACK = "Database reachable again"


def log_time(line: str) -> float:
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")
    return stamp.timestamp()


def pids_of(lines: list[str]) -> set[int]:
    return {int(line.split()[2]) for line in lines}


def echo_works(client) -> bool:
    try:
        return client.call({}, "echo", timeout=3, payload="x")["payload"] == "x"
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False


@pytest.mark.timeout(180)
def test_broker_outage_is_survived_and_logged_once_each_way(tmp_path):
    require("127.0.0.1", 5672, "RabbitMQ")
    proxy = TcpProxy(5672)
    url = f"rabbit://guest:guest@127.0.0.1:{proxy.port}/"
    try:
        with worker_process(tmp_path, workers=2, transport_url=url) as worker:
            parent, pids = worker.proc.pid, set(worker.workers())
            client = worker.client(direct=True)
            assert echo_works(client)
            before = worker.rows()[0]["report_count"]

            cut_at = time.time()
            proxy.cut()
            lost = wait_for(
                lambda: (
                    len(worker.lines(BROKER_LOST)) == 2 and worker.lines(BROKER_LOST)
                ),
                timeout=30,
            )
            # Still running, still heartbeating (the database is fine).
            wait_for(lambda: worker.rows()[0]["report_count"] >= before + 4, timeout=30)
            assert alive(parent) and set(worker.workers()) == pids

            restored_at = time.time()
            proxy.restore()
            back = wait_for(
                lambda: (
                    len(worker.lines(BROKER_BACK.format(port=proxy.port))) == 2
                    and worker.lines(BROKER_BACK.format(port=proxy.port))
                ),
                timeout=30,
            )
            wait_for(lambda: echo_works(client), timeout=90, interval=0.2)
            rpc_back_at = time.time()

            assert pids_of(lost) == pids and pids_of(back) == pids
            assert len(worker.lines(BROKER_LOST)) == 2  # once per worker, no more
            assert alive(parent) and set(worker.workers()) == pids
            noticed = max(log_time(line) for line in lost) - cut_at
            print(
                f"\nbroker outage: noticed after {noticed:.1f} s; RPC served again "
                f"{rpc_back_at - restored_at:.1f} s after the broker came back"
            )
    finally:
        proxy.close()


@pytest.mark.timeout(180)
def test_database_outage_is_survived_and_logged_once_each_way(tmp_path):
    with worker_behind_a_db_proxy(tmp_path) as (worker, proxy):
        parent, pids = worker.proc.pid, set(worker.workers())
        client = worker.client()
        count = lambda: worker.rows()[0]["report_count"]  # noqa: E731
        wait_for(lambda: count() >= 2, timeout=30)

        cut_at = time.time()
        proxy.cut()
        lost = wait_for(
            lambda: len(worker.lines(DB_LOST)) == 2 and worker.lines(DB_LOST),
            timeout=30,
        )
        # RPC keeps being served while the database is away.
        assert echo_works(client)
        stalled = count()
        time.sleep(3)  # several failed heartbeats: still one line each
        assert count() == stalled
        assert alive(parent) and set(worker.workers()) == pids

        restored_at = time.time()
        proxy.restore()
        back = wait_for(
            lambda: len(worker.lines(DB_BACK)) == 2 and worker.lines(DB_BACK),
            timeout=30,
        )
        wait_for(lambda: count() >= stalled + 2, timeout=30)

        assert pids_of(lost) == pids and pids_of(back) == pids
        assert len(worker.lines(DB_LOST)) == 2
        assert alive(parent) and set(worker.workers()) == pids
        noticed = max(log_time(line) for line in lost) - cut_at
        recovered = max(log_time(line) for line in back) - restored_at
        print(
            f"\ndatabase outage: noticed after {noticed:.1f} s; heartbeat "
            f"resumed {recovered:.1f} s after the database came back"
        )
