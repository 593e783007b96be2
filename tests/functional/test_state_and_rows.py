"""Where a binary's files and state are found, and how the services table
keys its rows.

A binary's default ``state_path`` is its project's, ``~/.local/state/<the
name up to the first '-'>``: myproj-api's SQLite table is myproj's, not the
sample's. Rows are keyed by (host, binary), as nova's: two instances of one
binary on one host share a row unless their ``host`` options differ."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.functional._wsgi_util import (
    BINARY,
    LISTENING,
    ROOT,
    api_server,
    start_api,
    write_config,
)
from tests.helpers import BIN, kill_group, run_in_session, spawn, wait_for

pytestmark = pytest.mark.timeout(120)


def rows(api) -> list[dict]:
    """The rows /v1/services lists (503 while the table is being created)."""
    status, _, body = api.request("/v1/services")
    assert status in (200, 503), body
    return json.loads(body)["services"] if status == 200 else []


def test_a_binarys_state_goes_under_its_projects_name(tmp_path):
    """myproj-api (wsgisvc-api under another name) with no state_path keeps
    its row in ~/.local/state/myproj, which myproj-manage reads, and leaves
    wsgisvc's ~/.local/state/wsgisvc alone."""
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    bin_dir.mkdir()
    (bin_dir / "myproj-api").symlink_to(BINARY)
    (bin_dir / "myproj-manage").symlink_to(os.path.join(BIN, "wsgisvc-manage"))
    conf = write_config(tmp_path, workers=1)
    conf.write_text(re.sub(r"^state_path = .*\n", "", conf.read_text(), flags=re.M))
    env = {"HOME": str(home)}
    proc, log_path = start_api(
        tmp_path, conf, command=[str(bin_dir / "myproj-api")], env=env
    )
    try:
        wait_for(lambda: LISTENING.search(log_path.read_text()), timeout=30)

        def listed() -> str:
            status, output = run_in_session(
                [str(bin_dir / "myproj-manage"), "--config-file", str(conf),
                 "service", "list"],
                timeout=60, env={**os.environ, **env},
            )  # fmt: skip
            return output if status == 0 and "wsgisvc-osapi" in output else ""

        assert " up " in wait_for(listed, timeout=60, interval=0.5)
    finally:
        kill_group(proc)
    state = home / ".local" / "state"
    assert (state / "myproj" / "wsgisvc.sqlite").exists()
    assert not (state / "wsgisvc").exists()


def test_a_binarys_files_are_found_under_its_projects_name(tmp_path):
    """myproj-api with no --config-file reads ~/.myproj/myproj.conf, as
    nova-api reads /etc/nova/nova.conf, not wsgisvc's ~/.wsgisvc/wsgisvc.conf."""
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    (home / ".myproj").mkdir(parents=True)
    (home / ".wsgisvc").mkdir()
    bin_dir.mkdir()
    (bin_dir / "myproj-api").symlink_to(BINARY)
    conf = write_config(tmp_path, workers=1)
    (home / ".myproj" / "myproj.conf").write_text(conf.read_text())
    (home / ".wsgisvc" / "wsgisvc.conf").write_text("[DEFAULT]\nosapi_workers = 0\n")
    log_path = tmp_path / "api.log"
    proc = spawn(
        [str(bin_dir / "myproj-api")],
        log_path,
        env={"HOME": str(home), "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: LISTENING.search(log_path.read_text()), timeout=30)
    finally:
        kill_group(proc)
    assert "osapi_workers" not in log_path.read_text()  # wsgisvc's file unread


def instance(tmp_path, name: str, shared, host: str):
    """A one-worker wsgisvc-api in a directory of its own, with ``host``,
    heartbeating every second into the services table under ``shared``."""
    directory = tmp_path / name
    directory.mkdir()
    extra = f"state_path = {shared}\nhost = {host}\nreport_interval = 1\n"
    return api_server(directory, workers=1, extra=extra)


def test_two_instances_on_one_host_share_a_row(tmp_path):
    """Same binary, same host: one row, kept up by whichever instance lives
    (nova's services table does the same)."""
    shared = tmp_path / "state"
    with instance(tmp_path, "a", shared, "node1") as first:
        [row] = wait_for(lambda: rows(first), timeout=30)
        with instance(tmp_path, "b", shared, "node1") as second:
            kill_group(first.proc)  # SIGKILL, waited for: it beats no more
            [now] = wait_for(lambda: rows(second), timeout=30)
            beats = now["report_count"]
            [after] = wait_for(
                lambda: [r for r in rows(second) if r["report_count"] > beats],
                timeout=30,
            )
            assert len(rows(second)) == 1
            assert (after["id"], after["host"], after["state"]) == (
                row["id"],
                "node1",
                "up",
            )


def test_two_instances_with_their_own_host_have_their_own_rows(tmp_path):
    shared = tmp_path / "state"
    with (
        instance(tmp_path, "a", shared, "node1-a"),
        instance(tmp_path, "b", shared, "node1-b") as second,
    ):
        found = wait_for(lambda: len(rows(second)) == 2 and rows(second), timeout=30)
        assert sorted((r["host"], r["binary"]) for r in found) == [
            ("node1-a", "wsgisvc-osapi"),
            ("node1-b", "wsgisvc-osapi"),
        ]
