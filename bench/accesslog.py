"""Microbenchmark: the cost of one access line, through oslo.log as the API
binary configures it (its default formatter, a log file), in microseconds.

    python -m bench.accesslog [--lines 20000]

Target (issue 11): <= 25 us per line. Not a test: a shared machine's noise
would make a timed test flaky; read the figure beside a quiet-machine one.
"""

import argparse
import logging
import tempfile
import time

from oslo_config import cfg
from oslo_log import log as oslo_log

from wsgisvc.http.accesslog import AccessLog
from wsgisvc.opts import wsgi_opts


def measure(lines: int) -> dict[str, float]:
    conf = cfg.ConfigOpts()
    oslo_log.register_options(conf)
    conf.register_opts(wsgi_opts)
    with tempfile.TemporaryDirectory() as tmp:
        conf(["--log-file", f"{tmp}/api.log"], project="wsgisvc-bench")
        oslo_log.setup(conf, "wsgisvc")
        access = AccessLog(conf.wsgi_log_format)
        figures = {}
        for label, rid in (
            ("with request id", "req-" + "0" * 36),
            ("no request id", ""),
        ):
            started = time.monotonic()
            cpu = time.process_time()
            for _ in range(lines):
                access.write(
                    "127.0.0.1", "GET /v1/ping HTTP/1.1", "200 OK", 15, started, rid
                )
            figures[f"{label}: CPU us/line"] = (time.process_time() - cpu) * 1e6 / lines
        with open(f"{tmp}/api.log") as log:
            figures["sample line"] = log.readline().strip()
        # our share alone: the same call with a handler that drops the record
        root = logging.getLogger()
        saved, root.handlers = root.handlers, [_Drop()]
        try:
            cpu = time.process_time()
            for _ in range(lines):
                access.write("127.0.0.1", "GET / HTTP/1.1", "200 OK", 15, started, rid)
            figures["ours only (record built, handler drops it): CPU us/line"] = (
                (time.process_time() - cpu) * 1e6 / lines
            )
        finally:
            root.handlers = saved
    return figures


class _Drop(logging.Handler):
    def emit(self, record) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.accesslog")
    parser.add_argument("--lines", type=int, default=20000)
    args = parser.parse_args()
    for name, value in measure(args.lines).items():
        print(
            f"{name}: {value:.1f}" if isinstance(value, float) else f"{name}: {value}"
        )


if __name__ == "__main__":
    main()
