"""An API serves first: its workers carry no database or messaging stack, and
its row in the services table is the top process's, kept once the workers
serve (issue 18)."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
import sqlalchemy as sa

from tests.functional._svc_util import database
from tests.functional._wsgi_util import api_server
from tests.helpers import wait_for
from wsgisvc.registry import migration

pytestmark = pytest.mark.timeout(120)

# What serving does not need; the sample app imports them on first use only.
NOT_FOR_SERVING = {"sqlalchemy", "alembic", "oslo_messaging", "kombu"}
REPORT = " {pid} WARNING wsgisvc.report "


def modules_in_report(api, pid: int) -> set[str]:
    """The Modules section of ``pid``'s SIGUSR2 report, as a set of names."""
    os.kill(pid, signal.SIGUSR2)
    header = re.compile(r"^=+\n=+ +Modules +=+\n=+\n", re.MULTILINE)

    def section():
        log = api.log()
        at = log.find(REPORT.format(pid=pid))
        found = header.search(log, at) if at >= 0 else None
        if found is None:
            return None
        end = re.compile(r"^=+$", re.MULTILINE).search(log, found.end())
        return log[found.end() : end.start() if end else len(log)]

    text = wait_for(section, timeout=30)
    return {name.strip() for name in text.replace("\n", " ").split(",")}


def registered(api) -> re.Match | None:
    return re.search(
        r" (\d+) INFO wsgisvc\.registry\.api .*Registered service", api.log()
    )


def test_workers_carry_no_database_or_messaging_stack(tmp_path, backend):
    with api_server(tmp_path, workers=2, backend=backend) as api:
        by = int(wait_for(lambda: registered(api), timeout=30).group(1))
        assert by == api.pid  # the parent registered the row, not a worker
        parent = modules_in_report(api, api.pid)
        assert NOT_FOR_SERVING - {"kombu", "oslo_messaging"} <= parent  # probe sees
        for worker in api.workers():
            carried = modules_in_report(api, worker)
            assert {"webob", "httptools", "oslo_config"} <= carried
            assert carried & NOT_FOR_SERVING == set(), worker
        log = api.log()
    # the row came after the workers were forked
    assert log.index("started worker") < log.index("Registered service")


def _rows(api) -> list[dict]:
    status, _, body = api.request("/v1/services")
    return json.loads(body)["services"] if status == 200 else []


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
@pytest.mark.parametrize("workers", [2, 1], ids=["workers", "single-process"])
def test_the_row_is_up_within_one_report_interval(tmp_path, db, workers):
    report_interval = 10
    with database(db, tmp_path) as url:
        if db != "sqlite":  # a configured database is the operator's to sync
            engine = sa.create_engine(url)
            migration.db_sync(engine)
            engine.dispose()
        extra = f"report_interval = {report_interval}\n"
        if db != "sqlite":
            extra += f"[services_table]\nconnection = {url}\n"
        started = time.monotonic()
        with api_server(tmp_path, workers=workers, extra=extra) as api:

            def up():
                return [r for r in _rows(api) if r["state"] == "up"]

            [row] = wait_for(up, timeout=report_interval)
            assert time.monotonic() - started < report_interval
            assert row["binary"] == "wsgisvc-osapi"


def test_a_database_that_cannot_be_reached_is_a_log_line_not_a_failed_start(
    tmp_path,
):
    # port 9 (discard) refuses: the check and every heartbeat fail at once
    url = "postgresql+psycopg://postgres@127.0.0.1:9/test"
    extra = f"report_interval = 1\n[services_table]\nconnection = {url}\n"
    with api_server(tmp_path, workers=2, extra=extra) as api:
        assert api.ping_pid()
        wait_for(lambda: "Lost the database" in api.log(), timeout=30)
        log = api.log()
    assert "Cannot check the schema of" in log
    [lost] = [line for line in log.splitlines() if "Lost the database" in line]
    assert f" {api.pid} ERROR wsgisvc.registry.heartbeat " in lost
