"""Drive placement with python-openstackclient and osc-placement, over HTTP,
against each server: create a resource provider, list it, set and list its
inventory, create a trait and set and list its traits, list allocation
candidates, delete it; check each answer.

The ``openstack`` command runs in this process (its ``main`` with the same
argv, one after the other), sparing a Python start per command. Placement runs
with noauth2 on a database placement-manage made, on the socket servers.py
hands each server:

    python osc_check.py [--server NAME | --server NAME=COMMAND]...
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import placement_conf
import servers
from openstackclient import shell

API_VERSION = "1.39"


# A server that died under a command leaves its request in the backlog of
# the socket this process holds: without a bound, the command waits forever.
COMMAND_TIMEOUT = 60


class CheckFailed(AssertionError):
    """An openstack command failed or answered what it should not."""


@contextlib.contextmanager
def _answered_within(seconds: int, argv: tuple[str, ...]):
    """Fail the command (SIGALRM in this, the main thread) past ``seconds``."""

    def too_slow(signo, frame):
        raise CheckFailed(f"openstack {' '.join(argv)}: no answer in {seconds} s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def openstack(endpoint: str, *argv: str) -> object:
    """Run ``openstack ARGV`` against ``endpoint``; its JSON output, if any."""
    out, err = io.StringIO(), io.StringIO()
    args = [
        "--os-auth-type",
        "admin_token",
        "--os-token",
        "admin",
        "--os-endpoint",
        endpoint,
        "--os-placement-api-version",
        API_VERSION,
        *argv,
    ]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with _answered_within(COMMAND_TIMEOUT, argv):
            status = shell.OpenStackShell().run(args)
    if status != 0:
        raise CheckFailed(
            f"openstack {' '.join(argv)}: exit {status}: {err.getvalue().strip()}"
        )
    return json.loads(out.getvalue()) if out.getvalue().strip() else None


def expect(what: str, got: object, want: object) -> None:
    if got != want:
        raise CheckFailed(f"{what}: {got!r}, not {want!r}")


def check(endpoint: str) -> int:
    """The commands, each answer checked; how many commands ran."""
    rp = str(uuid.uuid4())
    calls = 0

    def osc(*argv):
        nonlocal calls
        calls += 1
        return openstack(endpoint, *argv)

    created = osc(
        "resource", "provider", "create", "--uuid", rp, "interop-rp", "-f", "json"
    )
    expect("created provider", (created["uuid"], created["name"]), (rp, "interop-rp"))
    listed = osc("resource", "provider", "list", "-f", "json")
    expect("providers", [p["uuid"] for p in listed], [rp])
    osc(
        "resource",
        "provider",
        "inventory",
        "set",
        rp,
        "--resource",
        "VCPU=8",
        "--resource",
        "MEMORY_MB=4096",
        "--resource",
        "DISK_GB=100",
        "-f",
        "json",
    )
    inventory = osc("resource", "provider", "inventory", "list", rp, "-f", "json")
    expect(
        "inventory",
        {i["resource_class"]: i["total"] for i in inventory},
        {"VCPU": 8, "MEMORY_MB": 4096, "DISK_GB": 100},
    )
    osc("trait", "create", "CUSTOM_INTEROP")
    osc(
        "resource",
        "provider",
        "trait",
        "set",
        rp,
        "--trait",
        "CUSTOM_INTEROP",
        "--trait",
        "HW_CPU_X86_AVX2",
        "-f",
        "json",
    )
    traits = osc("resource", "provider", "trait", "list", rp, "-f", "json")
    expect(
        "traits",
        sorted(t["name"] for t in traits),
        ["CUSTOM_INTEROP", "HW_CPU_X86_AVX2"],
    )
    candidates = osc(
        "allocation",
        "candidate",
        "list",
        "--resource",
        "VCPU=2",
        "--resource",
        "MEMORY_MB=512",
        "--required",
        "CUSTOM_INTEROP",
        "-f",
        "json",
    )
    expect("candidates' providers", [c["resource provider"] for c in candidates], [rp])
    too_big = osc(
        "allocation", "candidate", "list", "--resource", "VCPU=9", "-f", "json"
    )
    expect("candidates for more VCPU than there is", too_big, [])
    osc("resource", "provider", "delete", rp)
    expect(
        "providers after delete", osc("resource", "provider", "list", "-f", "json"), []
    )
    return calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    servers.add_server_option(
        parser,
        "NAME or NAME=COMMAND (default: all three)",
    )
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="placement-osc-"))
    workdir.mkdir(parents=True, exist_ok=True)
    template = workdir / "synced.db"
    placement_conf.sync_database(template)
    sock = servers.listening_socket()
    endpoint = "http://{}:{}".format(*sock.getsockname())
    status = 0
    for server in args.server or servers.BUILTIN.values():
        serverdir = workdir / server.name
        serverdir.mkdir()
        shutil.copy(template, serverdir / "placement.db")
        placement_conf.write_noauth_config(serverdir, serverdir / "placement.db")
        env = {"OS_PLACEMENT_CONFIG_DIR": str(serverdir)}
        started = time.monotonic()
        try:
            with servers.serving(server, sock, env, serverdir / "server.log"):
                calls = check(endpoint)
        except (CheckFailed, servers.ServerError) as exc:
            print(f"osc: {server.name}: FAIL: {exc}")
            status = 1
        else:
            print(
                f"osc: {server.name}: {calls} openstack commands answered right "
                f"({time.monotonic() - started:.1f}s)"
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
