"""RPC round trip through RabbitMQ: latency percentiles and calls/s.

Starts a real ``wsgisvc-worker`` (2 worker processes by default, the sample
WorkerManager) on its own control exchange, then from this process:

1. ``--calls`` sequential ``echo`` calls: p50 / p90 / p99 / max latency;
2. ``--concurrency`` caller threads for ``--duration`` seconds: calls/s.

    .venv/bin/python -m bench.rpc_latency
    .venv/bin/python -m bench.rpc_latency --calls 1000 --concurrency 16 --workers 2
    .venv/bin/python -m bench.rpc_latency --clients 4   # 4 caller processes

The worker runs in its own session and is killed by process group at the
end, whatever happened. RabbitMQ must be reachable at --transport-url.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from oslo_config import cfg

from wsgisvc import rpc

BIN = Path(sys.executable).parent
CONSUMING = re.compile(r" (\d+) INFO wsgisvc.rpc .*RPC server consuming")


def start_worker(workdir: Path, args) -> tuple[subprocess.Popen, Path]:
    conf = workdir / "worker.conf"
    conf.write_text(
        "[DEFAULT]\n"
        f"transport_url = {args.transport_url}\n"
        f"control_exchange = wsgisvc_bench_{uuid.uuid4().hex[:8]}\n"
        f"host = bench-{uuid.uuid4().hex[:6]}\n"
        f"state_path = {workdir / 'state'}\n"
        f"worker_workers = {args.workers}\n"
        "executor_thread_pool_size = 64\n"
    )
    log = workdir / "worker.log"
    proc = subprocess.Popen(
        [str(BIN / "wsgisvc-worker"), "--config-file", str(conf)],
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while len(set(CONSUMING.findall(log.read_text(errors="replace")))) < args.workers:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"wsgisvc-worker did not start; see {log}")
        time.sleep(0.1)
    return proc, conf


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def measure_latency(client: rpc.RPCClient, calls: int) -> dict:
    for _ in range(20):  # warm up: reply queue, connections, both workers
        client.call({}, "echo", payload="warm")
    samples, pids = [], set()
    for n in range(calls):
        started = time.perf_counter()
        reply = client.call({}, "echo", payload=n)
        samples.append((time.perf_counter() - started) * 1000)
        pids.add(reply["pid"])
    return {
        "calls": calls,
        "workers_answering": len(pids),
        "p50_ms": round(percentile(samples, 50), 3),
        "p90_ms": round(percentile(samples, 90), 3),
        "p99_ms": round(percentile(samples, 99), 3),
        "max_ms": round(max(samples), 3),
        "mean_ms": round(statistics.fmean(samples), 3),
    }


def measure_throughput(client: rpc.RPCClient, threads: int, duration: float) -> dict:
    done, errors = [0] * threads, [0] * threads
    stop_at = time.monotonic() + duration

    def caller(slot: int) -> None:
        while time.monotonic() < stop_at:
            try:
                client.call({}, "echo", payload=slot)
                done[slot] += 1
            except Exception:  # noqa: BLE001 - counted and reported
                errors[slot] += 1

    workers = [threading.Thread(target=caller, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.monotonic() - started
    return {
        "concurrency": threads,
        "seconds": round(elapsed, 2),
        "calls": sum(done),
        "errors": sum(errors),
        "calls_per_s": round(sum(done) / elapsed, 1),
    }


def _client_process(conf_path: str, threads: int, duration: float) -> dict:
    """One caller process (its own connections, its own GIL)."""
    conf = cfg.ConfigOpts()
    conf(["--config-file", conf_path], project="wsgisvc-bench")
    client = rpc.RPCClient(conf, "worker", timeout=30)
    try:
        client.call({}, "echo", payload="warm")
        return measure_throughput(client, threads, duration)
    finally:
        client.close()


def measure_multi_process(conf_path: Path, clients: int, threads: int, duration):
    """``clients`` processes x ``threads`` callers: the caller side is then
    not what limits calls/s (one CPython process tops out first)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(clients) as pool:
        parts = pool.starmap(
            _client_process, [(str(conf_path), threads, duration)] * clients
        )
    seconds = max(part["seconds"] for part in parts)
    calls = sum(part["calls"] for part in parts)
    return {
        "client_processes": clients,
        "concurrency": clients * threads,
        "seconds": seconds,
        "calls": calls,
        "errors": sum(part["errors"] for part in parts),
        "calls_per_s": round(calls / seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--transport-url", default="rabbit://guest:guest@127.0.0.1:5672/"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--clients", type=int, default=1, help="caller processes (default 1)"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="wsgisvc-rpc-bench-") as tmp:
        proc, conf_path = start_worker(Path(tmp), args)
        try:
            conf = cfg.ConfigOpts()
            conf(["--config-file", str(conf_path)], project="wsgisvc-bench")
            client = rpc.RPCClient(conf, "worker", timeout=30)
            result = {
                "workers": args.workers,
                "latency": measure_latency(client, args.calls),
                "throughput": measure_throughput(
                    client, args.concurrency, args.duration
                )
                if args.clients == 1
                else measure_multi_process(
                    conf_path,
                    args.clients,
                    max(1, args.concurrency // args.clients),
                    args.duration,
                ),
            }
            client.close()
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lat, thr = result["latency"], result["throughput"]
    print(
        f"RPC echo via RabbitMQ, {args.workers} workers: "
        f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms over {lat['calls']} calls; "
        f"{thr['calls_per_s']} calls/s with {thr['concurrency']} callers "
        f"in {args.clients} process(es) "
        f"({thr['errors']} errors)"
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
