"""Requests that fail while wsgisvc-api reloads: a client loop across SIGHUPs.

    .venv/bin/python -m bench.reload_loop [--requests 3000] [--clients 4]
        [--workers 2] [--backend eventlet|threading]

Starts wsgisvc-api (127.0.0.1, a free port) on a configuration of its own in a
temporary directory. Four times, it edits the file, then sends ``--requests``
GETs of /v1/ping (a fresh connection each) over ``--clients`` threads, and
the parent SIGHUP once a tenth of them went out: a broken value
(``osapi_workers = two``: refused), the value fixed (a reload that applies),
one more worker (a changed count), another port with one more worker (the
count applies; the port needs a restart, and the old one serves on). Prints,
for each, the requests and those that failed (by error), whether the
reload's line came while the loop ran, and the lines the reloads logged.
"""

import argparse
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINARY = Path(sys.executable).parent / "wsgisvc-api"
LISTENING = re.compile(r"osapi listening on http://127\.0\.0\.1:(\d+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", default="eventlet")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        run(Path(directory), args)


def run(directory: Path, args) -> None:
    conf = directory / "wsgisvc.conf"
    conf.write_text(
        "[DEFAULT]\nosapi_listen = 127.0.0.1\nosapi_listen_port = 0\n"
        f"osapi_workers = {args.workers}\n"
        f"api_paste_config = {ROOT / 'etc' / 'api-paste.ini'}\n"
        f"state_path = {directory}\n"
    )
    log = directory / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BINARY), "--config-file", str(conf)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(os.environ, WSGISVC_BACKEND=args.backend),
        )
    try:
        port = int(_until(lambda: LISTENING.search(log.read_text())).group(1))
        _until(lambda: _ping(port) is None)
        print(f"backend {args.backend}, {args.workers} worker(s) at start")
        w = args.workers
        for what, edits, done in (
            ("broken value", {f"workers = {w}": "workers = two"}, "reload refused"),
            ("fixed again", {"workers = two": f"workers = {w}"}, "reload: "),
            ("one more worker", {f"workers = {w}": f"workers = {w + 1}"}, "reload: "),
            (
                "another port and one more worker",
                {
                    f"workers = {w + 1}": f"workers = {w + 2}",
                    "port = 0": f"port = {_free_port()}",
                },
                "a restart",
            ),
        ):
            said = log.read_text().count(done)
            text = conf.read_text()
            for old, new in edits.items():  # whole lines: "osapi_" + old
                text = text.replace(f"_{old}\n", f"_{new}\n")
            conf.write_text(text)
            outcomes = _load(port, args, lambda: proc.send_signal(signal.SIGHUP))
            reloaded = log.read_text().count(done) > said
            failed = sum(n for key, n in outcomes.items() if key != "ok")
            errors = ", ".join(
                f"{n} x {key}" for key, n in outcomes.items() if key != "ok"
            )
            print(
                f"{what}: {sum(outcomes.values())} requests, {failed} failed"
                f"{' (' + errors + ')' if errors else ''}; "
                f"{done!r} logged during the loop: {reloaded}"
            )
        for line in log.read_text().splitlines():
            if "reload" in line:
                print("  log:", line.split(" [-] ", 1)[-1])
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _load(port: int, args, sighup) -> Counter:
    """``args.requests`` GETs over ``args.clients`` threads; ``sighup()``
    once a tenth of them went out. What came back, counted."""
    outcomes: Counter = Counter()
    sent = threading.Semaphore(args.requests)
    clients = [
        threading.Thread(target=_client, args=(port, sent, outcomes))
        for _ in range(args.clients)
    ]
    for client in clients:
        client.start()
    _until(lambda: sum(outcomes.values()) >= args.requests // 10)
    sighup()
    for client in clients:
        client.join()
    return outcomes


def _client(port: int, sent: threading.Semaphore, outcomes: Counter) -> None:
    while sent.acquire(blocking=False):
        outcomes[_ping(port) or "ok"] += 1


def _ping(port: int) -> str | None:
    """None when /v1/ping answered 200; otherwise what went wrong."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/v1/ping", headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return None if response.status == 200 else f"status {response.status}"
    except OSError as exc:
        return type(exc).__name__
    finally:
        conn.close()


def _until(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.05)
    return value


if __name__ == "__main__":
    main()
