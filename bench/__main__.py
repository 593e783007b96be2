"""``python -m bench``: every server, every workload, back to back, in rounds.

Rounds are interleaved: within a round each workload group runs on every server
before the next group starts, and the server order rotates from round to round,
so a burst of noise from the shared machine lands on all servers alike rather
than on one. Each group gets a freshly started server.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench import report, servers, workloads, wrk

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark wsgisvc-api and its peers on the same paste app.",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="seconds per wrk run (W1-W4, R); default 10",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="unrecorded wrk seconds before each run; default 1",
    )
    parser.add_argument("--rounds", type=int, default=3, help="default 3")
    parser.add_argument(
        "--servers",
        default=",".join(servers.SERVERS),
        help="comma-separated; default: all (%(default)s)",
    )
    parser.add_argument(
        "--workloads",
        default=",".join(workloads.ALL),
        help="comma-separated; default: all (%(default)s)",
    )
    parser.add_argument(
        "--paste", type=Path, default=servers.REPO / "etc/api-paste.ini"
    )
    parser.add_argument("--app", default="osapi", help="paste app name; default osapi")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument(
        "--workers",
        type=int,
        default=servers.WORKERS,
        help="worker processes of every server but waitress; default %(default)s",
    )
    parser.add_argument(
        "--python",
        type=Path,
        help="the python of another venv with wsgisvc installed (a free-threaded "
        "build's): the wsgisvc-api servers run from its bin/; default this one's",
    )
    parser.add_argument("--out", type=Path, help="JSON file; default bench/results/")
    args = parser.parse_args(argv)
    args.servers = _pick(args.servers, servers.SERVERS, "server")
    args.workloads = _pick(args.workloads, workloads.ALL, "workload")
    if args.workers < 1:
        raise SystemExit(f"--workers {args.workers}: must be at least 1")
    if args.python is not None and not (args.python.parent / "wsgisvc-api").exists():
        raise SystemExit(
            f"--python {args.python}: no wsgisvc-api beside it "
            "(make a venv with that python and pip install -e . into it)"
        )
    return args


def _pick(csv: str, known, what: str) -> list[str]:
    names = [n.strip() for n in csv.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(
            f"unknown {what}(s): {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return names


def plan(selected: list[str]) -> list[str]:
    """Workload groups, each run on a fresh server. S is taken at every start."""
    groups = []
    if "W1" in selected or "M" in selected:
        groups.append("W1")
    groups += [w for w in ("W2", "W3", "W4", "SC", "R", "G") if w in selected]
    if not groups and "S" in selected:
        groups.append("S")
    return groups


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_group(spec, group: str, args, settings, ctx, rnd: int) -> list[dict]:
    """Start ``spec``, run one workload group on it, stop it; return samples."""
    if group == "R" and not spec.reloads_on_hup:
        return []
    base = {"round": rnd, "server": spec.name}
    samples = []
    server = servers.RunningServer(spec, ctx)
    try:
        started = server.wait_ready()
        if "S" in args.workloads:
            start_cpu = server.cpu_seconds()  # noise-resistant twin of the wall time
            sample = {"workload": "S", "seconds": started, "cpu_seconds": start_cpu}
            samples.append({**base, **sample})
        if group in ("W1", "W2", "W3", "W4"):
            load = workloads.loads(settings)[group]
            result = workloads.run_wrk(server, load, settings)
            if group != "W1" or "W1" in args.workloads:
                samples.append({**base, "workload": group, **result})
            if group == "W1" and "M" in args.workloads:
                samples.append({**base, "workload": "M", **server.memory()})
        elif group == "SC":
            samples.append(
                {
                    **base,
                    "workload": "SC",
                    **workloads.run_slow_clients(server, settings),
                }
            )
        elif group == "R":
            samples.append(
                {**base, "workload": "R", **workloads.run_reload(server, settings)}
            )
        elif group == "G":
            samples.append(
                {**base, "workload": "G", **workloads.run_graceful(server, settings)}
            )
    finally:
        server.stop()
    return samples


def _summary(sample: dict) -> str:
    if "rps" in sample:
        return (
            f"{sample['rps']:.0f} req/s p50 {sample['p50_ms']:.2f} ms "
            f"p99 {sample['p99_ms']:.2f} ms errors {sample['errors']} "
            f"non-2xx {sample['non2xx']}"
        )
    return ", ".join(
        f"{k}={v}"
        for k, v in sample.items()
        if k not in ("round", "server", "workload")
    )


def _versions(python: Path | None) -> dict:
    out = {"python": platform.python_version()}
    if python is not None:  # the wsgisvc servers': build, and the GIL's state
        probe = [python, "-c", "import sys; print(sys.version, sys.abiflags)"]
        out["wsgisvc_python"] = subprocess.run(
            probe, capture_output=True, text=True
        ).stdout.strip()
    for module in ("eventlet", "gunicorn", "waitress", "uwsgi"):
        try:
            from importlib.metadata import version

            out[module] = version(module)
        except Exception:
            out[module] = None
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    out["wrk"] = (wrk_version.stdout or wrk_version.stderr).split("\n")[0]
    return out


def _git_head() -> str | None:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=servers.REPO,
        capture_output=True,
        text=True,
    )
    return head.stdout.strip() or None


def _exit_on_sigterm(signum, frame) -> None:
    """Unwind on SIGTERM like on Ctrl-C, so every started server is stopped:
    servers run in sessions of their own and would outlive the bench."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    wrk.require_wrk()
    if not args.paste.exists():
        raise SystemExit(f"paste file {args.paste} not found (see --paste)")
    chosen = []
    for name in args.servers:
        why_not = servers.SERVERS[name].available and servers.SERVERS[name].available()
        if why_not:
            log(f"skipping {name}: {why_not}")
        else:
            chosen.append(servers.SERVERS[name])
    workdir = Path(tempfile.mkdtemp(prefix="wsgisvc-bench-"))
    settings = workloads.Settings(
        duration=args.duration,
        warmup=args.warmup,
        wrk_threads=args.wrk_threads,
        body_file=workloads.write_echo_body(workdir / "echo-16k.json"),
    )
    ctx = servers.Context(
        paste=args.paste.resolve(),
        app=args.app,
        workdir=workdir,
        workers=args.workers,
        wsgisvc_bin=args.python.parent if args.python else servers.VENV_BIN,
    )
    groups = plan(args.workloads)
    log(f"bench: {len(chosen)} servers x {groups} x {args.rounds} rounds")
    log(f"bench: server logs in {workdir}")
    began = datetime.now(UTC)
    samples, failures = [], []
    for rnd in range(args.rounds):
        shift = rnd % max(1, len(chosen))
        order = chosen[shift:] + chosen[:shift]
        for group in groups:
            for spec in order:
                try:
                    got = run_group(spec, group, args, settings, ctx, rnd)
                except (servers.ServerError, RuntimeError, OSError) as exc:
                    log(f"[round {rnd + 1}] {group} {spec.name}: FAILED: {exc}")
                    failures.append(
                        {
                            "round": rnd,
                            "server": spec.name,
                            "group": group,
                            "error": str(exc),
                        }
                    )
                    continue
                for sample in got:
                    where = f"[round {rnd + 1}] {sample['workload']} {spec.name}"
                    log(f"{where}: {_summary(sample)}")
                samples.extend(got)
    names = [s.name for s in chosen]
    medians = report.aggregate(samples)
    targets = report.evaluate_targets(medians)
    load = os.getloadavg()[0]
    print(
        f"\nwsgisvc bench, {args.rounds} round(s) of {args.duration:g} s, medians;"
        f" machine: {os.cpu_count()} CPUs, load {load:.2f}\n"
    )
    print(report.format_table(medians, args.workloads, names))
    print("targets (issue 18; throughput judged by req/s and by CPU per request):")
    print(report.format_targets(targets))
    uwsgi = report.against_uwsgi(medians)
    print("\nwsgisvc / uWSGI, every figure (informational, no target):")
    print(report.format_against_uwsgi(uwsgi))
    out = args.out or RESULTS / f"bench-{began:%Y%m%dT%H%M%SZ}.json"
    meta = {
        "started": began.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "git": _git_head(),
        "cpus": os.cpu_count(),
        "loadavg_end": os.getloadavg(),
        "versions": _versions(args.python),
        "workers": args.workers,
        "argv": sys.argv,
        "servers": names,
        "workloads": args.workloads,
        "duration": args.duration,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "paste": str(ctx.paste),
        "app": args.app,
        "logs": str(workdir),
    }
    report.write_json(
        out,
        against_uwsgi=uwsgi,
        meta=meta,
        medians=medians,
        targets=targets,
        samples=samples,
        failures=failures,
    )
    print(f"\nJSON: {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
