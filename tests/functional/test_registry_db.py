"""The services table on SQLite, PostgreSQL and MariaDB, for real.

Each test gets a schema (PostgreSQL), database (MariaDB) or file (SQLite) of
its own, so parallel runs never collide.
"""

import datetime
import threading

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from tests.functional._svc_util import BACKENDS, database
from wsgisvc import registry
from wsgisvc.registry import api, migration, schema
from wsgisvc.registry.models import Service, utcnow


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path):
    conf = cfg.ConfigOpts()
    conf([], project="wsgisvc-test", default_config_files=[], default_config_dirs=[])
    with database(request.param, tmp_path) as url:
        registry.register_opts(conf)
        conf.set_override("connection", url, group="services_table")
        engine = registry.create_engine(conf)
        try:
            yield conf, engine
        finally:
            engine.dispose()


@pytest.fixture
def synced(db):
    conf, engine = db
    registry.db_sync(engine)
    return conf, engine


def test_default_connection_is_sqlite_under_state_path(tmp_path):
    conf = cfg.ConfigOpts()
    conf([], project="wsgisvc-test", default_config_files=[], default_config_dirs=[])
    registry.register_opts(conf)
    conf.set_override("state_path", str(tmp_path / "state"))
    url = registry.connection_url(conf)
    assert url == f"sqlite:///{tmp_path / 'state' / 'wsgisvc.sqlite'}"
    engine = registry.create_engine(conf)
    registry.db_sync(engine)
    assert (tmp_path / "state" / "wsgisvc.sqlite").exists()
    engine.dispose()


@pytest.mark.timeout(60)
def test_db_sync_creates_the_table_and_is_idempotent(db):
    _conf, engine = db
    assert registry.db_version(engine) is None
    assert registry.db_sync(engine) == migration.head_revision()
    assert registry.db_sync(engine) == migration.head_revision()
    columns = {c["name"] for c in sa.inspect(engine).get_columns("services")}
    assert {
        "id",
        "uuid",
        "host",
        "binary",
        "topic",
        "cluster_name",
        "report_count",
        "disabled",
        "disabled_reason",
        "forced_down",
        "last_seen_up",
        "version",
        "created_at",
        "updated_at",
        "deleted_at",
        "deleted",
    } <= columns


def test_head_constant_is_alembics_head():
    # schema.HEAD spares binaries the alembic import; it must not go stale.
    assert schema.HEAD == migration.HEAD == migration.head_revision()


@pytest.mark.timeout(60)
def test_the_light_reader_sees_the_revision_alembic_wrote(db):
    """schema.revision() reads alembic_version with the DB-API driver alone."""
    conf, engine = db
    url, timeout = conf.services_table.connection, conf.services_table.connect_timeout
    assert schema.revision(url, timeout) is None
    registry.db_sync(engine)
    assert schema.revision(url, timeout) == schema.HEAD
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    assert schema.revision(url, timeout) == "0000"


@pytest.mark.timeout(60)
def test_migrations_match_the_models(synced):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    _conf, engine = synced
    with engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection), Service.metadata
        )
    # Only index/unique naming or type-variant noise is tolerated: no tables
    # or columns missing on either side.
    structural = [
        d
        for d in diff
        if d[0] in ("add_table", "remove_table", "add_column", "remove_column")
    ]
    assert structural == []


@pytest.mark.timeout(60)
def test_siblings_racing_to_register_get_one_row(synced):
    conf, engine = synced
    siblings = 6
    barrier = threading.Barrier(siblings)
    ids, errors = [], []

    def register():
        own = registry.create_engine(conf)  # one connection each, as forked workers
        try:
            barrier.wait()
            ids.append(api.get_or_create(own, "h1", "wsgisvc-worker", "worker").id)
        except Exception as error:  # noqa: BLE001 - the test reports any error
            errors.append(error)
        finally:
            own.dispose()

    threads = [threading.Thread(target=register) for _ in range(siblings)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(ids) == siblings and len(set(ids)) == 1
    assert len(api.get_all(engine)) == 1


@pytest.mark.timeout(60)
def test_register_updates_topic_of_an_existing_row(synced):
    _conf, engine = synced
    first = api.get_or_create(engine, "h1", "wsgisvc-worker", "worker")
    again = api.get_or_create(engine, "h1", "wsgisvc-worker", "worker2", "c1", 3)
    assert again.id == first.id
    assert (again.topic, again.cluster_name, again.version) == ("worker2", "c1", 3)


@pytest.mark.timeout(60)
def test_report_state_bumps_count_and_last_seen_up(synced):
    _conf, engine = synced
    row = api.get_or_create(engine, "h1", "wsgisvc-worker", "worker")
    assert row.report_count == 0 and row.last_seen_up is None
    assert api.report_state(engine, row.id)
    first = api.get(engine, row.id)
    assert api.report_state(engine, row.id)
    second = api.get(engine, row.id)
    assert (first.report_count, second.report_count) == (1, 2)
    assert second.last_seen_up >= first.last_seen_up
    # Microseconds survive (MariaDB's plain DATETIME would drop them).
    assert second.last_seen_up != first.last_seen_up


@pytest.mark.timeout(60)
def test_soft_delete_frees_the_name(synced):
    _conf, engine = synced
    old = api.get_or_create(engine, "h1", "wsgisvc-worker", "worker")
    assert api.soft_delete(engine, old.id)
    assert api.report_state(engine, old.id) is False
    gone = api.get(engine, old.id)
    assert gone.deleted == old.id and gone.deleted_at is not None
    new = api.get_or_create(engine, "h1", "wsgisvc-worker", "worker")
    assert new.id != old.id and new.deleted == 0
    assert [r.id for r in api.get_all(engine)] == [new.id]
    assert {r.id for r in api.get_all(engine, include_deleted=True)} == {old.id, new.id}


@pytest.mark.timeout(60)
def test_disable_enable_and_force_down(synced):
    _conf, engine = synced
    row = api.get_or_create(engine, "h1", "wsgisvc-worker", "worker")
    api.set_disabled(engine, row.id, True, "maintenance")
    assert (
        api.get(engine, row.id).disabled,
        api.get(engine, row.id).disabled_reason,
    ) == (
        True,
        "maintenance",
    )
    api.set_disabled(engine, row.id, False)
    assert api.get(engine, row.id).disabled is False
    api.set_forced_down(engine, row.id, True)
    assert api.get(engine, row.id).forced_down is True


@pytest.mark.timeout(60)
def test_is_up(synced):
    _conf, engine = synced
    row = api.get_or_create(engine, "h1", "wsgisvc-worker", "worker")
    now = utcnow()
    # Never reported: created_at counts.
    assert registry.is_up(api.get(engine, row.id), 60, now)
    assert not registry.is_up(
        api.get(engine, row.id), 60, now + datetime.timedelta(seconds=61)
    )
    api.report_state(engine, row.id)
    later = utcnow() + datetime.timedelta(seconds=30)
    assert registry.is_up(api.get(engine, row.id), 60, later)
    assert not registry.is_up(api.get(engine, row.id), 20, later)
    api.set_forced_down(engine, row.id, True)
    assert not registry.is_up(api.get(engine, row.id), 60, utcnow())
