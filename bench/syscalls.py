"""System calls per keep-alive request: strace the workers while one connection
sends GETs one after the other.

    .venv/bin/python -m bench.syscalls [--backend eventlet|threading]
                                       [--requests 500] [--paste bench/paste.ini]

Starts ``wsgisvc-api`` with two workers, as the bench does (its own session),
warms the connection up, attaches ``strace -f -c`` to both workers (every
thread), sends ``--requests`` GETs on that one connection, each after the
previous answer, and prints the calls per request: all but futex, futex apart
(lock and queue hand-offs between threads), and each call's own count. The
access line's write is among them (one per request), and so is what the bench
app calls itself (its request id: getrandom, getpid). Needs ``strace`` and
ptrace rights (``kernel.yama.ptrace_scope`` 0, or root). The server and strace
are ended by their process ids at the end, whatever happened.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LISTENING = re.compile(r"osapi listening on http://127\.0\.0\.1:(\d+)")
# strace -c: "% time  seconds  usecs/call  calls  [errors]  syscall"
ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def read_response(sock: socket.socket, buffered: bytearray) -> None:
    """One response with a Content-Length body (the bench app's)."""
    while b"\r\n\r\n" not in buffered:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        buffered += chunk
    head, _, _ = bytes(buffered).partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    end = len(head) + 4 + length
    while len(buffered) < end:
        buffered += sock.recv(65536)
    del buffered[:end]


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def traced(pid: int) -> bool:
    """Every thread of ``pid`` has a tracer."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as status:
            for line in status:
                if line.startswith("TracerPid:") and line.split()[1] == "0":
                    return False
    return True


def children(pid: int) -> list[str] | None:
    with open(f"/proc/{pid}/task/{pid}/children") as found:
        pids = found.read().split()
    return pids if len(pids) == 2 else None


def summary(text: str) -> dict[str, int]:
    calls = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match and match.group(2) != "total":
            calls[match.group(2)] = int(match.group(1))
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("eventlet", "threading"))
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--paste", default=str(ROOT / "bench" / "paste.ini"))
    parser.add_argument("--path", default="/v1/ping")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="syscalls-"))
    conf = workdir / "api.conf"
    (workdir / "state").mkdir()
    conf.write_text(
        "[DEFAULT]\n"
        f"state_path = {workdir / 'state'}\n"
        "osapi_listen = 127.0.0.1\nosapi_listen_port = 0\nosapi_workers = 2\n"
        f"api_paste_config = {args.paste}\n"
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    if args.backend:
        env["WSGISVC_BACKEND"] = args.backend
    log_path = workdir / "api.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(BIN / "wsgisvc-api"), "--config-file", str(conf)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    tracer = None
    try:
        port = int(
            wait_until(
                lambda: LISTENING.search(log_path.read_text()), 60, "the listener"
            ).group(1)
        )
        workers = wait_until(lambda: children(server.pid), 60, "both workers")
        sock = socket.create_connection(("127.0.0.1", port))
        buffered = bytearray()
        wanted = request(args.path)
        for _ in range(50):  # warm-up: imports, caches, the pool's threads
            sock.sendall(wanted)
            read_response(sock, buffered)
        out = workdir / "strace.txt"
        tracer = subprocess.Popen(
            ["strace", "-f", "-c", "-o", str(out)]
            + [arg for pid in workers for arg in ("-p", pid)],
            stderr=subprocess.DEVNULL,
        )
        wait_until(
            lambda: all(traced(int(pid)) for pid in workers), 30, "strace attached"
        )
        for _ in range(args.requests):
            sock.sendall(wanted)
            read_response(sock, buffered)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
        sock.close()
        calls = summary(out.read_text())
    finally:
        if tracer is not None and tracer.poll() is None:
            tracer.kill()
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    futex = calls.pop("futex", 0)
    total = sum(calls.values())
    per = args.requests
    print(f"backend {args.backend or 'default'}, {per} keep-alive GETs {args.path}")
    print(f"syscalls/request (futex apart): {total / per:.2f}")
    print(f"futex/request: {futex / per:.2f}")
    for name, count in sorted(calls.items(), key=lambda item: -item[1]):
        print(f"  {name:<16} {count / per:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
