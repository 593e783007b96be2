"""wsgisvc-manage against a real services table (the SQLite default)."""

import subprocess

import pytest
from oslo_config import cfg

from tests.helpers import BIN
from wsgisvc import registry
from wsgisvc.registry import api, migration

MANAGE = f"{BIN}/wsgisvc-manage"


@pytest.fixture
def manage(tmp_path):
    conf_path = tmp_path / "manage.conf"
    conf_path.write_text(f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\n")

    def run(*args, status=0):
        done = subprocess.run(
            [MANAGE, "--config-file", str(conf_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,  # forks nothing; run() kills it on timeout
        )
        assert done.returncode == status, done.stdout + done.stderr
        return done.stdout

    conf = cfg.ConfigOpts()
    conf(["--config-file", str(conf_path)], project="wsgisvc-test")
    registry.register_opts(conf)
    run.engine = registry.create_engine(conf)
    yield run
    run.engine.dispose()


def listed(output: str, host: str) -> list[str]:
    line = next(x for x in output.splitlines() if f"| {host} " in x)
    return [cell.strip() for cell in line.strip("|").split("|")]


@pytest.mark.timeout(120)
def test_db_sync_version_and_service_commands(manage):
    assert "None" in manage("db", "version")
    assert migration.head_revision() in manage("db", "sync")

    up = api.get_or_create(manage.engine, "h-up", "wsgisvc-worker", "worker")
    api.report_state(manage.engine, up.id)
    api.get_or_create(manage.engine, "h-two", "wsgisvc-worker", "worker")

    cells = listed(manage("service", "list"), "h-up")
    assert cells[1:6] == ["wsgisvc-worker", "h-up", "worker", "enabled", "up"]

    manage("service", "disable", "h-up", "wsgisvc-worker", "--reason", "disk swap")
    row = api.get(manage.engine, up.id)
    assert (row.disabled, row.disabled_reason) == (True, "disk swap")
    manage("service", "force-down", "h-up", "wsgisvc-worker")
    cells = listed(manage("service", "list"), "h-up")
    assert (cells[4], cells[5], cells[7], cells[8]) == (
        "disabled",
        "down",
        "True",
        "disk swap",
    )

    manage("service", "enable", "h-up", "wsgisvc-worker")
    manage("service", "force-down", "h-up", "wsgisvc-worker", "--unset")
    row = api.get(manage.engine, up.id)
    assert (row.disabled, row.disabled_reason, row.forced_down) == (False, None, False)

    assert "deleted" in manage("service", "delete", "h-up", "wsgisvc-worker")
    output = manage("service", "list")
    assert "h-up" not in output and "h-two" in output
    assert api.get(manage.engine, up.id).deleted == up.id


@pytest.mark.timeout(60)
def test_unknown_service_is_exit_1_and_bad_usage_exit_2(manage):
    manage("db", "sync")
    manage("service", "disable", "nohost", "wsgisvc-worker", status=1)
    manage("service", "frobnicate", status=2)
