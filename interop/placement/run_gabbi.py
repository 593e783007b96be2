"""Run placement's own gabbi suite over real HTTP against real servers.

Placement runs its gabbits in-process, each YAML file under one fixture of
placement/tests/functional/fixtures/gabbits.py that sets up a configuration, a
SQLite database in memory with data in it, and environment variables the YAML
substitutes. Here each file's fixture runs in this process as placement wrote
it, but on a SQLite file, and then, one after the other, each server is
started on what the fixture set up and the file's tests are run against it:

- the fixture's configuration reaches the server as placement.conf
  (placement_conf.py) in the directory OS_PLACEMENT_CONFIG_DIR names, and
  the policy rules a fixture sets in-process as a policy file;
- its data reach the server as a copy of the fixture's SQLite file, one copy
  for each server, so that each starts from the same data.

Each server is stopped (SIGTERM) before the next starts. Files run in
``--lanes`` processes at once, each holding the one listening socket its
servers are handed (servers.py). The outcome of every test under every
server is written as JSON; the per-file pass counts are printed side by side,
then every test the first server (the baseline) passes and another does not.

    python run_gabbi.py [--server NAME | --server NAME=COMMAND]... [FILE...]
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import json
import multiprocessing
import os
import signal
import sqlite3
import sys
import tempfile
import textwrap
import time
import traceback
import unittest
from concurrent import futures
from pathlib import Path

import placement
import placement_conf
import servers
import yaml
from gabbi import fixture, handlers, suitemaker
from placement import policy as placement_policy
from placement.tests import fixtures as placement_test_fixtures
from placement.tests.functional.fixtures import gabbits as placement_gabbits

GABBITS = Path(placement.__file__).parent / "tests/functional/gabbits"
PASSED = ("pass", "xfail")  # what unittest counts as successful


class Outcomes(unittest.TestResult):
    """The outcome of each test, by name, and why each one that did not pass
    did not."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: dict[str, str] = {}
        self.reasons: dict[str, str] = {}

    def _record(self, test, outcome, reason=None):
        self.outcomes[test.test_data["name"]] = outcome
        if reason is not None:
            self.reasons[test.test_data["name"]] = reason

    def addSuccess(self, test):
        self._record(test, "pass")

    def addFailure(self, test, err):
        self._record(test, "fail", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        self._record(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        self._record(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        self._record(test, "xfail")

    def addUnexpectedSuccess(self, test):
        self._record(test, "uxsuccess")


def file_database(url: str):
    """placement's Database fixture, on the SQLite file at ``url``."""
    database = placement_test_fixtures.Database

    def make(conf_fixture, set_config=False):
        conf_fixture.config(connection=url, group="placement_database")
        return database(conf_fixture, set_config=set_config)

    return make


def copy_database(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def test_names(suite_dict: dict) -> list[str]:
    return [test["name"] for test in suite_dict["tests"]]


def failed_all(names: list[str], why: str) -> dict:
    """Outcomes of a file none of whose tests could run."""
    return {
        "outcomes": dict.fromkeys(names, "error"),
        "reasons": dict.fromkeys(names, why),
        "start": None,
        "stop": None,
    }


def run_tests(suite_dict, path, server, sock, workdir, defaults, policy) -> dict:
    """One server on a copy of the fixture's data, the file's tests against it."""
    serverdir = workdir / server.name
    serverdir.mkdir()
    copy_database(workdir / "fixture.db", serverdir / "placement.db")
    placement_conf.write_config(
        placement_gabbits.CONF,
        defaults,
        serverdir,
        f"sqlite:///{serverdir}/placement.db",
        policy,
    )
    host, port = sock.getsockname()
    # a deep copy: gabbi substitutes $HISTORY and the like into the test data
    tests = copy.deepcopy(suite_dict)
    # Plain HTTP: no certificate to validate, and the client of each test would
    # build a TLS context that verifies, which costs more CPU than the test.
    tests.setdefault("defaults", {})["cert_validate"] = False
    suite = suitemaker.test_suite_from_dict(
        unittest.defaultTestLoader,
        path.stem,
        tests,
        str(path.parent),
        host,
        port,
        None,
        None,
        handlers=[h() for h in handlers.RESPONSE_HANDLERS],
    )
    clients = [test.http.client for test in suite]  # run() lets go of its tests
    result = Outcomes()
    env = {"OS_PLACEMENT_CONFIG_DIR": str(serverdir)}
    log = serverdir / "server.log"
    try:
        started = time.monotonic()
        with servers.serving(server, sock, env, log):
            start = time.monotonic() - started
            suite.run(result)
            for client in clients:  # gabbi leaves each test's connection open
                client.close()
            stopping = time.monotonic()
        stop = time.monotonic() - stopping
    except servers.ServerError as exc:
        return failed_all(test_names(suite_dict), f"{server.name} {exc}")
    return {
        "outcomes": result.outcomes,
        "reasons": result.reasons,
        "start": start,
        "stop": stop,
    }


def run_file(path: Path, chosen, workdir: Path, defaults) -> dict:
    """Run one YAML file's fixture here, then its tests against each server."""
    workdir.mkdir(parents=True)
    suite_dict = yaml.safe_load(path.read_text())
    fixture_classes = [
        getattr(placement_gabbits, name) for name in suite_dict.pop("fixtures", [])
    ]
    results = {}
    database = placement_test_fixtures.Database
    placement_test_fixtures.Database = file_database(f"sqlite:///{workdir}/fixture.db")
    try:
        with fixture.nest([fixture_class() for fixture_class in fixture_classes]):
            policy = placement_conf.write_policy(placement_policy._ENFORCER, workdir)
            for server in chosen:
                results[server.name] = run_tests(
                    suite_dict, path, server, _lane_socket, workdir, defaults, policy
                )
    except Exception:
        why = f"fixture: {traceback.format_exc()}"
        for server in chosen:
            results.setdefault(server.name, failed_all(test_names(suite_dict), why))
    finally:
        placement_test_fixtures.Database = database
    return results


_lane_socket = None
PR_SET_PDEATHSIG = 1  # prctl(2)


def _start_lane(log: Path, harness: int) -> None:
    """A lane's process: its own listening socket; its output (the fixtures'
    log capture prints) to a file; SIGTERM when the harness dies, and SIGTERM
    an exit that stops the server it runs (servers run in sessions of their
    own, which no signal for the harness reaches)."""
    global _lane_socket
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != harness:  # it died before the line above
        sys.exit(1)
    _lane_socket = servers.listening_socket()
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(out, 1)
    os.dup2(out, 2)


def table(results: dict, names: list[str]) -> str:
    header = ["file", "tests", *names]
    rows, totals = [], [0] * (len(names) + 1)
    for file in sorted(results):
        counts = [len(results[file][names[0]]["outcomes"])] + [
            sum(o in PASSED for o in results[file][n]["outcomes"].values())
            for n in names
        ]
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        rows.append([file, *map(str, counts)])
    rows.append(["total", *map(str, totals)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *map(line, rows)])


def verdict(results: dict, names: list[str], floor: int) -> int:
    """Print the tests the baseline passes and another server does not, by file,
    with each different reason once, and the tests no server passes; 1 if any
    of the first, or if the baseline passes fewer than ``floor``."""
    baseline, status = names[0], 0
    passed = {
        file: [t for t, o in results[file][baseline]["outcomes"].items() if o in PASSED]
        for file in sorted(results)
    }
    total = sum(map(len, passed.values()))
    if total < floor:
        print(f"FAIL: {baseline} passes {total} tests, fewer than {floor}")
        status = 1
    for name in names[1:]:
        for file, tests in passed.items():
            ran = results[file][name]
            failed = [t for t in tests if ran["outcomes"].get(t) not in PASSED]
            if failed:
                status = 1
                print(
                    f"FAIL: {file}: {len(failed)} tests pass under {baseline}, "
                    f"not under {name}: {', '.join(map(repr, failed))}"
                )
                for why in dict.fromkeys(ran["reasons"].get(t, "") for t in failed):
                    print(textwrap.indent(why.strip() or "(not run)", "    "))
    for file in sorted(results):
        for test, outcome in results[file][baseline]["outcomes"].items():
            if all(results[file][n]["outcomes"].get(test) not in PASSED for n in names):
                why = results[file][baseline]["reasons"].get(test, "").strip()
                print(
                    f"passes under no server: {file}: {test!r} ({outcome}): "
                    f"{why.splitlines()[-1] if why else ''}"
                )
    return status


def timings(results: dict, names: list[str]) -> str:
    """Each server's total and median time from exec to the first 200, and from
    SIGTERM to its exit, over the files."""
    lines = []
    for name in names:
        for what in ("start", "stop"):
            times = sorted(
                r[name][what] for r in results.values() if r[name][what] is not None
            )
            if times:
                lines.append(
                    f"{name}: {what} {sum(times):.0f}s over {len(times)} "
                    f"files, median {times[len(times) // 2]:.2f}s"
                )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    servers.add_server_option(
        parser,
        "NAME (gunicorn, wsgisvc-eventlet, wsgisvc-threading) "
        "or NAME=COMMAND; the first is the baseline "
        "(default: all three, gunicorn first)",
    )
    parser.add_argument(
        "--floor", type=int, default=0, help="fail when the baseline passes fewer tests"
    )
    parser.add_argument(
        "--lanes",
        type=int,
        default=2,
        help="files run at once, each in a process of its own",
    )
    parser.add_argument("--out", type=Path, help="write the outcomes here as JSON")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="configurations, databases, "
        "server logs (default: a new temporary directory)",
    )
    parser.add_argument("files", nargs="*", help="YAML file names (default: all)")
    args = parser.parse_args()
    chosen = args.server or list(servers.BUILTIN.values())
    names = [server.name for server in chosen]
    if len(set(names)) != len(names):
        parser.error("two servers with one name")
    paths = [
        GABBITS / (f if f.endswith(".yaml") else f"{f}.yaml") for f in args.files
    ] or sorted(GABBITS.glob("*.yaml"))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="placement-gabbi-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"gabbi: {len(paths)} files, servers {', '.join(names)}, {args.lanes} "
        f"lanes, logs in {workdir}",
        flush=True,
    )
    defaults = placement_conf.server_defaults()
    results = {}
    with futures.ProcessPoolExecutor(
        args.lanes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_lane,
        initargs=(workdir / "lanes.log", os.getpid()),
    ) as lanes:
        running = {
            lanes.submit(
                run_file, path, chosen, workdir / path.stem, defaults
            ): path.stem
            for path in paths
        }
        for done in futures.as_completed(running):
            file = running[done]
            results[file] = done.result()
            counts = [
                sum(o in PASSED for o in results[file][n]["outcomes"].values())
                for n in names
            ]
            total = len(results[file][names[0]]["outcomes"])
            print(
                f"{file}: "
                + ", ".join(
                    f"{n} {c}/{total}" for n, c in zip(names, counts, strict=True)
                ),
                flush=True,
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    print(table(results, names))
    print(timings(results, names))
    return verdict(results, names, args.floor)


if __name__ == "__main__":
    sys.exit(main())
