"""Drive a server with wrk and turn its report into numbers.

The request shape lives in ``wrk.lua`` (configured through environment
variables); its ``done()`` hook prints one JSON line with exact percentiles and
wrk's error counters, which is what this module parses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).resolve().parent / "wrk.lua"
INSTALL_HINT = (
    "wrk is not installed: on Debian/Ubuntu `apt-get install wrk` "
    "(https://github.com/wg/wrk for other systems)"
)


@dataclass
class Load:
    """One wrk invocation's request mix, independent of the server."""

    path: str
    connections: int
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body_file: Path | None = None


def require_wrk() -> str:
    path = shutil.which("wrk")
    if not path:
        raise SystemExit(INSTALL_HINT)
    return path


def start(
    base_url: str, load: Load, duration: float, threads: int = 2
) -> subprocess.Popen:
    """Start wrk in the background (R and G need to act while it runs)."""
    env = dict(
        os.environ,
        BENCH_METHOD=load.method,
        BENCH_BODY_FILE=str(load.body_file or ""),
        BENCH_HEADERS="\n".join(f"{k}: {v}" for k, v in load.headers.items()),
    )
    argv = [
        require_wrk(),
        "-t",
        str(min(threads, load.connections)),
        "-c",
        str(load.connections),
        "-d",
        f"{max(1, round(duration))}s",
        "--timeout",  # a queued request is slow, not failed: keep it in p99
        "10s",
        "--latency",
        "-s",
        str(LUA),
        base_url + load.path,
    ]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 120.0) -> dict:
    """Wait for wrk and return its figures (requests/s, p50/p99 in ms, errors)."""
    out, _ = proc.communicate(timeout=timeout)
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            return summarize(json.loads(line[len("BENCH_JSON ") :]))
    raise RuntimeError(
        f"wrk printed no BENCH_JSON line (exit {proc.returncode}):\n{out}"
    )


def run(base_url: str, load: Load, duration: float, threads: int = 2) -> dict:
    return finish(start(base_url, load, duration, threads), timeout=duration + 60)


def summarize(raw: dict) -> dict:
    seconds = raw["duration_us"] / 1e6 or 1.0
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "rps": raw["requests"] / seconds,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "requests": raw["requests"],
        "errors": socket_errors,
        "non2xx": raw["status"],
        "raw": raw,
    }
