"""Server CPU of an upload: the same data with Content-Length and chunked.

    .venv/bin/python -m bench.upload [--mib 256] [--crlf-mib MIB] [--one-byte-mib 2]
        [--requests-mib 0.25]
        [--servers wsgisvc-eventlet,wsgisvc-threads,gunicorn-gthread]
        [--kinds cl,random,crlf,1-byte,requests]

Each server runs in its own session on 127.0.0.1 with one worker process,
serving :func:`app` (this module), which reads ``wsgi.input`` to its end in
reads of 64 KiB and answers the count of bytes it read. Each upload is one
``POST`` on a connection of its own:

- ``cl``: ``--mib`` MiB of random data with ``Content-Length``;
- ``random``: the same data chunked, in 64 KiB chunks;
- ``crlf``: ``--crlf-mib`` (else ``--mib``) MiB of ``CRLF`` pairs, in 64 KiB
  chunks (issue 24: a parser that cuts at every ``CRLF CRLF`` cuts inside
  these chunks);
- ``1-byte``: ``--one-byte-mib`` MiB of random data, one byte per chunk (six
  bytes on the wire per byte of data);
- ``requests``: ``--requests-mib`` MiB of the shortest GET, pipelined on one
  connection: no data at all, the yardstick for what a client can make a
  worker spend per byte it sends.

The server's CPU is utime + stime of every process in its process group, from
``/proc/PID/stat``, before and after each upload (after one unmeasured upload
of each kind). The table gives it per GiB on the wire and per GiB of data, the
upload's speed on the wire, and the CPU per GiB of data as a multiple of the
``cl`` upload's. The servers are killed by process group at the end, whatever
happened.
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
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MIB = 1 << 20
CHUNK = 65536
BLOCK = MIB  # data per sendall: the client costs little beside the server
TICKS = os.sysconf("SC_CLK_TCK")
KINDS = ("cl", "random", "crlf", "1-byte", "requests")
TINY = b"GET / HTTP/1.1\r\nHost: b\r\n\r\n"  # the shortest request, pipelined
SERVERS = {
    "wsgisvc-eventlet": (
        ["wsgisvc-serve", "--app", "bench.upload:app", "--name", "upload"],
        ["--bind", "127.0.0.1:0", "--workers", "1", "--backend", "eventlet"],
        r"upload listening on http://127\.0\.0\.1:(\d+)",
    ),
    "wsgisvc-threads": (
        ["wsgisvc-serve", "--app", "bench.upload:app", "--name", "upload"],
        ["--bind", "127.0.0.1:0", "--workers", "1", "--backend", "threading"],
        r"upload listening on http://127\.0\.0\.1:(\d+)",
    ),
    "gunicorn-gthread": (
        ["gunicorn", "bench.upload:app", "-k", "gthread", "--threads", "8"],
        ["-b", "127.0.0.1:0", "-w", "1"],
        r"Listening at: http://127\.0\.0\.1:(\d+)",
    ),
}


def app(environ, start_response):
    """Read the whole body; answer how many bytes it had."""
    body, total = environ["wsgi.input"], 0
    while piece := body.read(CHUNK):
        total += len(piece)
    answer = b"%d" % total
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))],
    )
    return [answer]


# --- what goes on the wire ----------------------------------------------------


def chunked(data: bytes, size: int) -> bytes:
    """``data`` as chunks of ``size`` bytes, without the last chunk."""
    return b"".join(
        b"%x\r\n%s\r\n" % (len(piece), piece)
        for piece in (data[at : at + size] for at in range(0, len(data), size))
    )


def upload(kind: str, mib: float) -> tuple[bytes, int, Iterator[bytes]]:
    """The head, the data's length and the body's blocks of one upload (of
    ``requests``: no head, no data, the requests in blocks)."""
    if kind == "requests":
        count = max(1, int(mib * MIB) // len(TINY))
        last = TINY.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        return b"", 0, iter([TINY * (count - 1) + last])
    length = min(BLOCK, max(2, int(mib * MIB) // 2 * 2))
    blocks = max(1, int(mib * MIB) // length)
    head = b"POST /upload HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
    data = os.urandom(length) if kind != "crlf" else b"\r\n" * (length // 2)
    if kind == "cl":
        head += b"Content-Length: %d\r\n\r\n" % (blocks * length)
        return head, blocks * length, (data for _ in range(blocks))
    block = chunked(data, 1 if kind == "1-byte" else CHUNK)
    head += b"Transfer-Encoding: chunked\r\n\r\n"

    def body() -> Iterator[bytes]:
        for _ in range(blocks):
            yield block
        yield b"0\r\n\r\n"

    return head, blocks * length, body()


def send(port: int, head: bytes, size: int, blocks: Iterator[bytes]) -> int:
    """Send one upload; the bytes sent. Every answer must be a 200 that says
    the server read all data. Answers are read meanwhile, on a thread of
    their own (pipelined requests are answered while they are sent)."""
    sent, pieces = len(head), []
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        reader = threading.Thread(target=_read_all, args=(sock, pieces))
        reader.start()
        sock.sendall(head)
        for block in blocks:
            sock.sendall(block)
            sent += len(block)
        reader.join()
    answers = b"".join(pieces).split(b"HTTP/1.1 ")[1:]
    expected = b"200 OK\r\n"
    if not answers or not all(
        a.startswith(expected) and a.endswith(b"\r\n%d" % size) for a in answers
    ):
        raise RuntimeError(f"unexpected answer: {b''.join(pieces)[:200]!r}")
    return sent


def _read_all(sock: socket.socket, pieces: list[bytes]) -> None:
    while piece := sock.recv(65536):
        pieces.append(piece)


# --- the server and its CPU ---------------------------------------------------


def cpu_seconds(group: int) -> float:
    """utime + stime of every live process of process group ``group``."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:  # ended since the listing
            continue
        if int(fields[2]) == group:  # fields[0] is the state: pgrp is field 5
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / TICKS


def start(name: str, workdir: Path) -> tuple[subprocess.Popen, int]:
    command, options, pattern = SERVERS[name]
    log = workdir / f"{name}.log"
    proc = subprocess.Popen(
        [str(BIN / command[0]), *command[1:], *options],
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    deadline = time.monotonic() + 60
    while not (match := re.search(pattern, log.read_text(errors="replace"))):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            sys.exit(f"{name} did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    return proc, int(match.group(1))


def measure(name: str, kinds: list[str], sizes: dict[str, float]) -> list[dict]:
    """One fresh server: every kind of upload once unmeasured, then measured."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="upload-") as tmp:
        proc, port = start(name, Path(tmp))
        try:
            for kind in kinds:
                send(port, *upload(kind, min(sizes[kind], 0.25)))  # warm
            for kind in kinds:
                head, size, blocks = upload(kind, sizes[kind])
                before, started = cpu_seconds(proc.pid), time.monotonic()
                wire = send(port, head, size, blocks)
                seconds = time.monotonic() - started
                rows.append(
                    {
                        "server": name,
                        "kind": kind,
                        "data": size,
                        "wire": wire,
                        "seconds": seconds,
                        "cpu": cpu_seconds(proc.pid) - before,
                    }
                )
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return rows


def table(rows: list[dict]) -> str:
    """A Markdown table; ``x cl`` is CPU per GiB of data over the cl row's
    (``-`` where either is unknown: no data, or too little CPU to tell)."""
    lines = [
        "| server | upload | data MiB | wire MiB | wire MiB/s | CPU s"
        " | CPU s/GiB wire | CPU s/GiB data | x cl |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    cl = {r["server"]: r["cpu"] / r["data"] for r in rows if r["kind"] == "cl"}
    for row in rows:
        per_data = row["cpu"] / row["data"] if row["data"] else None
        base = cl.get(row["server"])
        ratio = f"{per_data / base:.2f}" if per_data is not None and base else "-"
        data = f"{per_data * (1 << 30):.2f}" if per_data is not None else "-"
        lines.append(
            f"| {row['server']} | {row['kind']} | {row['data'] / MIB:g}"
            f" | {row['wire'] / MIB:.1f} | {row['wire'] / MIB / row['seconds']:.1f}"
            f" | {row['cpu']:.2f} | {row['cpu'] / row['wire'] * (1 << 30):.2f}"
            f" | {data} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=256, help="data of cl, random")
    parser.add_argument("--crlf-mib", type=float, help="data of crlf (--mib)")
    parser.add_argument("--one-byte-mib", type=float, default=2, help="data of 1-byte")
    parser.add_argument("--requests-mib", type=float, default=0.25, help="requests")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args(argv)
    names, kinds = args.servers.split(","), args.kinds.split(",")
    for value, known in ((names, SERVERS), (kinds, KINDS)):
        if unknown := [v for v in value if v not in known]:
            parser.error(f"unknown: {', '.join(unknown)} (known: {', '.join(known)})")
    sizes = {
        "cl": args.mib,
        "random": args.mib,
        "crlf": args.mib if args.crlf_mib is None else args.crlf_mib,
        "1-byte": args.one_byte_mib,
        "requests": args.requests_mib,
    }
    rows = [row for name in names for row in measure(name, kinds, sizes)]
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
