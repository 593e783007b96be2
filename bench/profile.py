"""``python -m bench.profile``: where one server's worker spends its CPU under load.

Starts the server as the bench does, drives it with one workload's wrk load,
samples one worker process with py-spy, and prints the CPU share of each layer of
the paste pipeline (the innermost layer a sample was in) and the hottest
functions. This is how the profile in bench/README.md was taken.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import servers, workloads, wrk

# (label, a substring of a py-spy frame); a sample belongs to the innermost match.
LAYERS = [
    ("eventlet accept loop, hub, other", "GreenPool._spawn_n_impl"),
    ("HTTP parsing and response writing", "HttpProtocol.handle_one_request"),
    ("HTTP parsing and response writing", "AsyncWorker.handle"),
    ("URLMap (+ wsgify of the filter below)", "URLMap.__call__"),
    ("oslo RequestId", "RequestId.__call__"),
    ("FaultWrapper", "FaultWrapper.__call__"),
    ("oslo RequestBodySizeLimiter", "RequestBodySizeLimiter.__call__"),
    ("oslo HTTPProxyToWSGI", "ConfigurableMiddleware.__call__"),
    ("v1 app (Routes, webob, json)", "V1App.__call__"),
    ("access log line (logging, oslo.log)", "Logger.info"),
    ("socket send", "GreenSocket._send_loop"),
    ("socket recv", "GreenSocket._recv_loop"),
    ("hub switch", "BaseHub.switch"),
]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--server", default="wsgisvc-api", choices=servers.SERVERS)
    parser.add_argument("--workload", default="W1", choices=["W1", "W2", "W3", "W4"])
    parser.add_argument("--seconds", type=float, default=10.0, help="sampling time")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--top", type=int, default=20, help="hottest functions shown")
    parser.add_argument(
        "--paste", type=Path, default=servers.REPO / "etc/api-paste.ini"
    )
    parser.add_argument("--out", type=Path, help="keep py-spy's raw stacks here")
    parser.add_argument(
        "--gil",
        action="store_true",
        help="sample only the thread holding the GIL (threads backend: the "
        "pool's idle threads otherwise fill the samples)",
    )
    return parser.parse_args(argv)


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw format: ``frame;frame;...;frame count`` per line."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks.append((stack.split(";"), int(count)))
    return stacks


def by_layer(stacks: list[tuple[list[str], int]]) -> collections.Counter:
    shares: collections.Counter = collections.Counter()
    for frames, count in stacks:
        label = "outside request handling"
        for frame in frames:  # outermost first: the last match is the innermost
            for name, marker in LAYERS:
                if marker in frame:
                    label = name
        shares[label] += count
    return shares


def by_function(stacks: list[tuple[list[str], int]]) -> collections.Counter:
    """Self time: the frame a sample was taken in."""
    shares: collections.Counter = collections.Counter()
    for frames, count in stacks:
        shares[frames[-1]] += count
    return shares


def record(args: argparse.Namespace, raw: Path) -> dict:
    """Run the server under load and sample one worker; return wrk's figures."""
    py_spy = shutil.which("py-spy", path=str(servers.VENV_BIN)) or shutil.which(
        "py-spy"
    )
    if not py_spy:
        raise SystemExit("py-spy not found: pip install -r bench/requirements.txt")
    workdir = Path(tempfile.mkdtemp(prefix="wsgisvc-profile-"))
    settings = workloads.Settings(
        body_file=workloads.write_echo_body(workdir / "echo-16k.json")
    )
    load = workloads.loads(settings)[args.workload]
    ctx = servers.Context(paste=args.paste.resolve(), app="osapi", workdir=workdir)
    server = servers.RunningServer(servers.SERVERS[args.server], ctx)
    try:
        server.wait_ready()
        workloads.warm_up(server, load, workloads.Settings(warmup=2.0))
        workers = [p for p in servers.group_pids(server.pid) if p != server.pid]
        target = workers[0] if workers else server.pid
        driver = wrk.start(server.url, load, args.seconds + 3)
        time.sleep(1.0)  # sample the steady state, not wrk's connection burst
        subprocess.run(
            [py_spy, "record", "-p", str(target), "-d", str(round(args.seconds)),
             "-r", str(args.rate), "--format", "raw", "-o", str(raw),
             *(["--gil"] if args.gil else [])],
            check=True, capture_output=True,
        )  # fmt: skip
        return wrk.finish(driver)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    raw = args.out or Path(tempfile.mkdtemp(prefix="wsgisvc-profile-")) / "stacks.txt"
    figures = record(args, raw)
    stacks = read_stacks(raw)
    total = sum(count for _, count in stacks) or 1
    print(
        f"{args.server} {args.workload}: {figures['rps']:.0f} req/s, "
        f"p99 {figures['p99_ms']:.1f} ms; {total} samples of one worker\n"
    )
    print("CPU by layer (innermost):")
    for label, count in by_layer(stacks).most_common():
        print(f"  {100 * count / total:5.1f} %  {label}")
    print(f"\nhottest functions (self time), top {args.top}:")
    for frame, count in by_function(stacks).most_common(args.top):
        print(f"  {100 * count / total:5.1f} %  {frame}")
    print(f"\nraw stacks: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
