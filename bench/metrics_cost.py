"""What the request hooks of wsgisvc.metrics cost per request, on and off.

    .venv/bin/python -m bench.metrics_cost [--requests N] [--rounds R]

Runs, in a loop, the calls a request makes: the HTTP core's one
(``http_request_done``) and the gunicorn worker's three (``request_started``,
``request_counted``, ``request_ended``), monkey patched as a worker is, first
with metrics off, then on (a private multiprocess directory, as a
ProcessLauncher parent sets it up, without the listener). Prints the best
round of each, in microseconds per request; the target is 10 µs on.
"""

import wsgisvc.cmd  # noqa: F401, I001  (filters eventlet's warnings, monkey patches)

import argparse
import os
import shutil
import tempfile
import time

from wsgisvc import metrics

TARGET_US = 10.0
# A few label sets, as a real API sees them.
REQUESTS = [
    ("GET /v1/ping HTTP/1.1", "200 OK"),
    ("POST /v1/echo HTTP/1.1", "201 Created"),
    ("GET /v1/nothing HTTP/1.1", "404 Not Found"),
    ("DELETE /v1/thing/1 HTTP/1.1", "204 No Content"),
]


def core_us(requests: int) -> float:
    done = metrics.http_request_done
    methods = [(line.partition(" ")[0], status) for line, status in REQUESTS]
    calls = methods * (requests // len(methods))
    begin = time.perf_counter()
    for method, status in calls:
        done("osapi", method, status, begin)
    return (time.perf_counter() - begin) / len(calls) * 1e6


def gunicorn_us(requests: int) -> float:
    started, counted, ended = (
        metrics.request_started,
        metrics.request_counted,
        metrics.request_ended,
    )
    calls = REQUESTS * (requests // len(REQUESTS))
    begin = time.perf_counter()
    for line, status in calls:
        started("gunicorn")
        counted("gunicorn", line[:3], status[:3], 0.0042)
        ended("gunicorn")
    return (time.perf_counter() - begin) / len(calls) * 1e6


def best_of(measure, rounds: int, requests: int) -> float:
    return min(measure(requests) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    off = {m: best_of(m, args.rounds, args.requests) for m in (core_us, gunicorn_us)}
    directory = tempfile.mkdtemp(prefix="wsgisvc-metrics-bench-")
    os.environ[metrics.ENV] = directory
    try:
        assert metrics.use_environment()
        on = {m: best_of(m, args.rounds, args.requests) for m in off}
    finally:
        shutil.rmtree(directory)
    for measure, path in ((core_us, "HTTP core"), (gunicorn_us, "gunicorn worker")):
        print(
            f"{path:16} metrics off: {off[measure]:5.2f} us/request   "
            f"on: {on[measure]:5.2f} us/request (target <= {TARGET_US:.0f})"
        )
    print("PASS" if max(on.values()) <= TARGET_US else "FAIL")


if __name__ == "__main__":
    main()
