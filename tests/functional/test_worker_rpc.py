"""wsgisvc-worker with 2 workers as a real process, through the real RabbitMQ,
on both backends (calls, heartbeat and periodic tasks, SIGTERM, SIGHUP)."""

import os
import signal
import subprocess
import threading
import uuid

import oslo_messaging as messaging
import pytest

from tests.functional._worker_util import worker_process
from tests.helpers import BIN, kill_group, spawn, wait_for

MANAGE = os.path.join(BIN, "wsgisvc-manage")


@pytest.mark.timeout(120)
def test_calls_fanout_and_topic_host(tmp_path, backend):
    with worker_process(tmp_path, workers=2, backend=backend) as worker:
        pids = set(worker.workers())
        assert len(pids) == 2
        client = worker.client()

        # Round trip; the shared topic queue spreads calls over both workers.
        answered = set()
        for n in range(40):
            reply = client.call({}, "echo", payload={"n": n})
            assert reply["payload"] == {"n": n}
            answered.add(reply["pid"])
        assert answered == pids

        # topic.host reaches this host; another host name reaches nobody.
        assert (
            client.call({}, "echo", server=worker.host, payload=1)["host"]
            == worker.host
        )
        with pytest.raises(messaging.MessagingTimeout):
            client.call({}, "echo", server=worker.host + "-other", timeout=2, payload=1)

        # A fanout cast reaches every worker, once each.
        token = uuid.uuid4().hex
        client.cast({}, "ping", fanout=True, token=token)
        wait_for(lambda: len(worker.lines(f"received ping {token}")) == 2, timeout=20)
        got = {int(line.split()[2]) for line in worker.lines(f"received ping {token}")}
        assert got == pids


@pytest.mark.timeout(120)
def test_heartbeat_rows_advance_and_periodic_task_runs(tmp_path, backend):
    with worker_process(tmp_path, workers=2, backend=backend) as worker:

        def row():
            rows = worker.rows()
            assert len(rows) == 1, rows  # two workers, one row
            return rows[0]

        first = row()
        assert (first["host"], first["binary"], first["topic"]) == (
            worker.host,
            "wsgisvc-worker",
            "worker",
        )
        wait_for(lambda: row()["report_count"] >= first["report_count"] + 4, timeout=30)
        last_seen = row()["last_seen_up"]
        assert last_seen is not None
        assert first["last_seen_up"] is None or str(last_seen) > str(
            first["last_seen_up"]
        )

        listing = subprocess.run(
            [MANAGE, "--config-file", str(worker.conf_path), "service", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,  # forks nothing; run() kills it on timeout
        )
        assert listing.returncode == 0, listing.stderr
        line = next(x for x in listing.stdout.splitlines() if worker.host in x)
        assert "| up " in line and "enabled" in line

        client = worker.client()
        wait_for(lambda: client.call({}, "stats")["periodic_runs"] >= 2, timeout=30)


@pytest.mark.timeout(120)
def test_sigterm_during_a_2s_call_lets_it_return(tmp_path, backend):
    with worker_process(tmp_path, workers=2, backend=backend) as worker:
        client = worker.client()
        result = {}

        def slow_call():
            result["reply"] = client.call({}, "sleep", ms=2000)

        caller = threading.Thread(target=slow_call)
        caller.start()
        wait_for(lambda: worker.lines("sleeping 2000 ms for a call"), timeout=20)
        worker.proc.send_signal(signal.SIGTERM)
        caller.join(30)
        assert result.get("reply", {}).get("slept_ms") == 2000, worker.log()
        assert worker.proc.wait(timeout=30) == 0, worker.log()
        assert "exited with status 0" in worker.log()


@pytest.mark.timeout(60)
def test_manager_hooks_are_not_callable_over_rpc(tmp_path):
    with worker_process(tmp_path, workers=1) as worker:
        with pytest.raises(messaging.RemoteError, match="NoSuchMethod"):
            worker.client().call({}, "init_host")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_restarts_the_service_and_rpc_still_answers(tmp_path, workers, backend):
    with worker_process(tmp_path, workers=workers, backend=backend) as worker:
        client = worker.client()
        assert client.call({}, "echo", payload="before")["payload"] == "before"
        consuming_before = len(worker.lines("RPC server consuming"))
        worker.proc.send_signal(signal.SIGHUP)
        # Every worker's RPC server comes up again.
        wait_for(
            lambda: (
                len(worker.lines("RPC server consuming")) >= consuming_before + workers
            ),
            timeout=60,
        )
        wait_for(lambda: _echo_ok(client), timeout=60, interval=0.2)
        assert worker.proc.poll() is None
        row = worker.rows()[0]
        wait_for(
            lambda: worker.rows()[0]["report_count"] > row["report_count"], timeout=30
        )


def _echo_ok(client) -> bool:
    try:
        return client.call({}, "echo", timeout=3, payload="after")["payload"] == "after"
    except messaging.MessagingTimeout:
        return False


@pytest.mark.timeout(60)
def test_unusable_state_path_is_one_clear_line_and_exit_1(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    conf = tmp_path / "bad.conf"
    conf.write_text(f"[DEFAULT]\nstate_path = {blocker}/state\n")
    log = tmp_path / "bad.log"
    proc = spawn([f"{BIN}/wsgisvc-worker", "--config-file", str(conf)], log)
    try:
        assert proc.wait(timeout=45) == 1
    finally:
        kill_group(proc)
    errors = [line for line in log.read_text().splitlines() if " ERROR " in line]
    assert len(errors) == 1, log.read_text()
    assert "wsgisvc-worker cannot start" in errors[0] and str(blocker) in errors[0]
