"""Run the real ``wsgisvc-worker`` binary for functional tests, and call it.

``worker_process()`` writes a config file with a control exchange and a host
name of the test's own (so parallel runs never share queues), starts the
binary in its own session, waits until every worker consumes, and kills the
whole process group when the test ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from pathlib import Path

import sqlalchemy as sa
from oslo_config import cfg

from tests.functional._svc_util import RABBIT_URL, TcpProxy, database, require
from tests.helpers import BIN, children, kill_group, spawn, wait_for
from wsgisvc import registry, rpc

ROOT = Path(__file__).resolve().parents[2]
BINARY = str(Path(BIN) / "wsgisvc-worker")
CONSUMING = re.compile(r" (\d+) INFO wsgisvc.rpc .*RPC server consuming")


class Worker:
    def __init__(self, proc, conf_path: Path, log_path: Path, host: str, db_url: str):
        self.proc = proc
        self.conf_path = conf_path
        self.log_path = log_path
        self.host = host
        self.db_url = db_url
        self.conf = cfg.ConfigOpts()
        self.conf(["--config-file", str(conf_path)], project="wsgisvc-test")
        self._clients: list[rpc.RPCClient] = []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self, text: str) -> list[str]:
        return [line for line in self.log().splitlines() if text in line]

    def workers(self) -> list[int]:
        return children(self.proc.pid)

    def client(self, direct: bool = False, **kwargs) -> rpc.RPCClient:
        """A client on the worker's exchange; ``direct`` skips any proxy in
        the worker's transport_url and talks to RabbitMQ itself."""
        kwargs.setdefault("timeout", 20)
        if direct:
            kwargs["transport"] = rpc.get_transport(self.conf, url=RABBIT_URL)
        c = rpc.RPCClient(self.conf, "worker", **kwargs)
        self._clients.append(c)
        return c

    def rows(self) -> list[dict]:
        engine = sa.create_engine(self.db_url)
        try:
            with engine.connect() as c:
                return [
                    dict(r._mapping)
                    for r in c.execute(sa.text("SELECT * FROM services"))
                ]
        finally:
            engine.dispose()

    def close(self) -> None:
        for c in self._clients:
            c.close()
            c.transport.cleanup()


def write_config(
    tmp_path: Path, host: str, workers: int, extra: str, transport_url: str
) -> Path:
    conf = tmp_path / "worker.conf"
    conf.write_text(
        "[DEFAULT]\n"
        f"transport_url = {transport_url}\n"
        f"control_exchange = wsgisvc_test_{uuid.uuid4().hex[:10]}\n"
        f"host = {host}\n"
        f"state_path = {tmp_path / 'state'}\n"
        f"worker_workers = {workers}\n"
        "report_interval = 1\n"
        "periodic_interval = 1\n"
        "periodic_fuzzy_delay = 0\n"
        "graceful_shutdown_timeout = 30\n" + extra
    )
    return conf


@contextlib.contextmanager
def worker_process(
    tmp_path: Path,
    workers: int = 2,
    extra: str = "",
    db_url: str | None = None,
    transport_url: str = RABBIT_URL,
    backend: str = "eventlet",
):
    """A started wsgisvc-worker (on ``backend``) whose workers all consume;
    killed on exit."""
    require("127.0.0.1", 5672, "RabbitMQ")
    host = f"host-{uuid.uuid4().hex[:8]}"
    conf = write_config(tmp_path, host, workers, extra, transport_url)
    db_url = db_url or f"sqlite:///{tmp_path / 'state' / 'wsgisvc.sqlite'}"
    log_path = tmp_path / "worker.log"
    proc = spawn(
        [BINARY, "--config-file", str(conf)],
        log_path,
        env={"PYTHONPATH": str(ROOT), "WSGISVC_BACKEND": backend},
        cwd=tmp_path,
    )
    worker = Worker(proc, conf, log_path, host, db_url)
    try:

        def consuming():
            assert proc.poll() is None, f"wsgisvc-worker exited:\n{worker.log()}"
            return len(set(CONSUMING.findall(worker.log()))) >= workers

        wait_for(consuming, timeout=60)
        yield worker
    finally:
        worker.close()
        kill_group(proc)


@contextlib.contextmanager
def worker_behind_a_db_proxy(tmp_path: Path, extra: str = ""):
    """A 2-worker wsgisvc-worker whose [services_table] is a fresh PostgreSQL database
    at the current schema, reached through a TcpProxy the test can cut and
    restore; yields ``(worker, proxy)``."""
    require("127.0.0.1", 5432, "PostgreSQL")
    proxy = TcpProxy(5432)
    try:
        with database("postgresql", tmp_path) as direct_url:
            engine = sa.create_engine(direct_url)
            registry.db_sync(engine)
            engine.dispose()
            proxied = direct_url.replace(":5432/", f":{proxy.port}/")
            extra += f"[services_table]\nconnection = {proxied}\nconnect_timeout = 2\n"
            with worker_process(tmp_path, 2, extra, db_url=direct_url) as worker:
                yield worker, proxy
    finally:
        proxy.close()
