"""What the request hooks of wsgisvc.metrics cost per request, on and off.

    .venv/bin/python -m bench.metrics_cost [--requests N] [--rounds R]

Runs the two calls the HTTP server makes per request
(``request_started`` and ``request_finished``) in a loop, monkey patched as a
worker is, first with metrics off, then on (a private multiprocess directory,
as a ProcessLauncher parent sets it up, without the listener). Prints the
best round of each, in microseconds per request; the target is 10 µs on.
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
    ("osapi", "GET", 200),
    ("osapi", "POST", 201),
    ("osapi", "GET", 404),
    ("osapi", "DELETE", 204),
]


def per_request_us(requests: int) -> float:
    started, finished = metrics.request_started, metrics.request_finished
    calls = REQUESTS * (requests // len(REQUESTS))
    begin = time.perf_counter()
    for app, method, code in calls:
        started(app)
        finished(app, method, code, 0.0042)
    return (time.perf_counter() - begin) / len(calls) * 1e6


def best_of(rounds: int, requests: int) -> float:
    return min(per_request_us(requests) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    off = best_of(args.rounds, args.requests)
    directory = tempfile.mkdtemp(prefix="wsgisvc-metrics-bench-")
    os.environ[metrics.ENV] = directory
    try:
        assert metrics.use_environment()
        on = best_of(args.rounds, args.requests)
    finally:
        shutil.rmtree(directory)
    print(f"metrics off: {off:.2f} us/request")
    print(f"metrics on:  {on:.2f} us/request (target <= {TARGET_US:.0f})")
    print("PASS" if on <= TARGET_US else "FAIL")


if __name__ == "__main__":
    main()
