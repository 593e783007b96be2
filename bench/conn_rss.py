"""Worker memory after many short connections: what closed connections leave behind.

    .venv/bin/python -m bench.conn_rss [--backend threading] [--workers 2]
                                       [--connections 1000,20000] [--clients 8]

For each count in ``--connections``, starts a fresh ``wsgisvc-api``
(etc/api-paste.ini) in its own session, opens that many connections from
``--clients`` threads, one ``GET /v1/ping`` with ``Connection: close`` on each,
and prints the workers' resident memory (VmRSS) before and right after: before
the head deadlines of those connections have passed. The server is killed by
process group at the end, whatever happened.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REQUEST = b"GET /v1/ping HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
LISTENING = re.compile(r"osapi listening on http://127\.0\.0\.1:(\d+)")


def workers(parent: int) -> list[int]:
    with open(f"/proc/{parent}/task/{parent}/children") as children:
        return sorted(int(pid) for pid in children.read().split())


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def one_request(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(REQUEST)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer: {answer[:80]!r}")


def connect_many(port: int, count: int, clients: int) -> float:
    """``count`` one-request connections from ``clients`` threads; seconds taken."""
    shares = [count // clients + (i < count % clients) for i in range(clients)]
    errors: list[BaseException] = []

    def client(share: int) -> None:
        try:
            for _ in range(share):
                one_request(port)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.monotonic() - started


def start(workdir: Path, backend: str, count: int) -> tuple[subprocess.Popen, Path]:
    conf = workdir / "wsgisvc.conf"
    conf.write_text(
        "[DEFAULT]\n"
        f"state_path = {workdir}\n"
        "osapi_listen = 127.0.0.1\n"
        "osapi_listen_port = 0\n"
        f"osapi_workers = {count}\n"
        f"api_paste_config = {ROOT / 'etc' / 'api-paste.ini'}\n"
    )
    log = workdir / "api.log"
    proc = subprocess.Popen(
        [str(BIN / "wsgisvc-api"), "--config-file", str(conf)],
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=dict(os.environ, WSGISVC_BACKEND=backend),
        cwd=workdir,
    )
    return proc, log


def measure(backend: str, count: int, connections: int, clients: int) -> None:
    """One fresh server: its workers' RSS warm, then after ``connections``."""
    with tempfile.TemporaryDirectory(prefix="conn-rss-") as tmp:
        proc, log = start(Path(tmp), backend, count)
        try:
            deadline = time.monotonic() + 30
            while not (match := LISTENING.search(log.read_text(errors="replace"))):
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"wsgisvc-api did not start:\n{log.read_text()}")
                time.sleep(0.05)
            port = int(match.group(1))
            while len(workers(proc.pid)) < count:
                time.sleep(0.05)
            connect_many(port, 4 * count, clients)  # every worker warm
            pids = workers(proc.pid)

            def report(label: str) -> None:
                sizes = [rss_kib(pid) for pid in pids]
                each = ", ".join(f"{size / 1024:.1f}" for size in sizes)
                print(f"{label}: RSS {each} MiB (sum {sum(sizes) / 1024:.1f})")

            report(f"{backend}, {count} workers, warm")
            seconds = connect_many(port, connections, clients)
            report(f"  after {connections} connections ({connections / seconds:.0f}/s)")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="threading")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", default="1000,20000")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    counts = [int(n) for n in args.connections.split(",")]
    for count in counts:
        measure(args.backend, args.workers, count, args.clients)
    return 0


if __name__ == "__main__":
    sys.exit(main())
