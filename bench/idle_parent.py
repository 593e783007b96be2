"""Idle cost of a launcher's parent: wsgisvc's ProcessLauncher vs oslo.service's.

    .venv/bin/python -m bench.idle_parent [--seconds 10] [--workers 4]

Starts each launcher with idle workers in its own session, waits until the
workers run, then reads the parent's CPU time (/proc/PID/schedstat, ns) over
``--seconds``; prints both and their ratio. oslo.service comes with
oslo.messaging; wsgisvc does not import it anywhere else.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

CHILD = r"""
import sys
import eventlet
eventlet.monkey_patch()
from oslo_config import cfg
kind, workers = sys.argv[1], int(sys.argv[2])
conf = cfg.ConfigOpts()
conf([])
if kind == "wsgisvc":
    from wsgisvc import service as svc
    class Idle(svc.ServiceBase):
        def start(self): pass
        def stop(self): pass
        def wait(self): pass
        def reset(self): pass
    launcher = svc.launch(conf, Idle(), workers=workers)
else:
    from oslo_service import service as svc
    class Idle(svc.Service):
        pass
    launcher = svc.launch(conf, Idle(), workers=workers)
launcher.wait()
"""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def measure(kind: str, workers: int, seconds: float) -> float:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(children(proc.pid)) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind}: workers did not start")
            time.sleep(0.05)
        time.sleep(1)  # start-up is over
        before = cpu_seconds(proc.pid)
        time.sleep(seconds)
        return cpu_seconds(proc.pid) - before
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    used = {k: measure(k, args.workers, args.seconds) for k in ("wsgisvc", "oslo")}
    for kind, cpu in used.items():
        share = 100 * cpu / args.seconds
        print(
            f"{kind:8} parent: {cpu * 1000:8.2f} ms CPU in {args.seconds:g} s"
            f" = {share:.4f} % of a core"
        )
    print(f"oslo.service / wsgisvc = {used['oslo'] / used['wsgisvc']:.0f} x")


if __name__ == "__main__":
    main()
