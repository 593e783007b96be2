"""Time from exec to the first 200 on GET / for placement under each server.

Each server is started ``--runs`` times on a database placement-manage made,
handed the listening socket as in the gabbi runs (servers.py), and stopped
(SIGTERM) once it answers; the median of the runs is printed, and every run,
and the median CPU time the server's processes spent from exec to exit.

    python startup_time.py [--runs N] [--server NAME | --server NAME=COMMAND]...
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import placement_conf
import servers


def _children_cpu() -> float:
    """CPU time of the exited children, and of theirs they waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    servers.add_server_option(
        parser,
        "NAME or NAME=COMMAND (default: all three)",
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="placement-startup-"))
    placement_conf.sync_database(workdir / "placement.db")
    placement_conf.write_noauth_config(workdir, workdir / "placement.db")
    env = {"OS_PLACEMENT_CONFIG_DIR": str(workdir)}
    sock = servers.listening_socket()
    for server in args.server or servers.BUILTIN.values():
        times, cpu = [], []
        log = workdir / f"{server.name}.log"
        for _ in range(args.runs):
            before = _children_cpu()
            started = time.monotonic()
            with servers.serving(server, sock, env, log):
                times.append(time.monotonic() - started)
            cpu.append(_children_cpu() - before)
        runs = " ".join(f"{t:.2f}" for t in times)
        print(
            f"{server.name}: median {statistics.median(times):.2f}s (runs: {runs}); "
            f"CPU from exec to exit, median {statistics.median(cpu):.2f}s"
        )
    shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
