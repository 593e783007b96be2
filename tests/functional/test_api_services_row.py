"""An API's row in the services table: its name, opting out, up from the start."""

from __future__ import annotations

import datetime
import json

import pytest
import sqlalchemy as sa

from tests.functional._wsgi_util import api_server
from tests.helpers import wait_for
from wsgisvc.registry import api as registry_api
from wsgisvc.registry import migration, models

pytestmark = pytest.mark.timeout(90)


def rows(api) -> list[dict]:
    """The rows /v1/services lists (the API registers its own once it serves)."""
    status, _, body = api.request("/v1/services")
    assert status in (200, 503), body  # 503 while the table is being created
    return json.loads(body)["services"] if status == 200 else []


def test_a_stale_row_is_up_as_soon_as_the_api_registers(tmp_path):
    """The row of an earlier run, last seen an hour ago: the API's start
    registers it as seen now, not at the first heartbeat (report_interval)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'wsgisvc.sqlite'}")
    migration.db_sync(engine)
    row = registry_api.get_or_create(engine, "stale-host", "wsgisvc-osapi")
    long_ago = models.utcnow() - datetime.timedelta(hours=1)
    with engine.begin() as connection:
        connection.execute(
            sa.update(models.Service)
            .where(models.Service.id == row.id)
            .values(created_at=long_ago, last_seen_up=long_ago)
        )
    engine.dispose()
    extra = "host = stale-host\nreport_interval = 60\n"
    with api_server(tmp_path, workers=1, extra=extra) as api:
        [found] = wait_for(lambda: [r for r in rows(api) if r["state"] == "up"])
        assert found["binary"] == "wsgisvc-osapi"


def test_the_row_name_is_an_option(tmp_path):
    extra = "osapi_service_binary = billing-api\n"
    with api_server(tmp_path, workers=1, extra=extra) as api:
        assert [r["binary"] for r in wait_for(lambda: rows(api))] == ["billing-api"]


def test_an_api_can_stay_out_of_the_table(tmp_path):
    with api_server(tmp_path, workers=1, extra="osapi_in_services_table = false\n"):
        pass
    database = tmp_path / "wsgisvc.sqlite"
    if database.exists():  # never synced: no table, or no row in it
        engine = sa.create_engine(f"sqlite:///{database}")
        with engine.connect() as connection:
            if sa.inspect(connection).has_table("services"):
                assert connection.execute(sa.text("SELECT * FROM services")).all() == []
        engine.dispose()
