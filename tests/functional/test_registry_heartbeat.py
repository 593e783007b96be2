"""Heartbeat against real databases, including a database that goes away."""

import logging
import sys

import pytest
import sqlalchemy as sa
from oslo_config import cfg

from tests.functional._svc_util import (
    BACKENDS,
    TcpProxy,
    backend_port,
    database,
)
from tests.helpers import green_wait_for
from wsgisvc import backend, registry
from wsgisvc.backend import sleep as backend_sleep
from wsgisvc.registry import api

INTERVAL = 0.2


def make_conf(url):
    conf = cfg.ConfigOpts()
    conf([], project="wsgisvc-test", default_config_files=[], default_config_dirs=[])
    registry.register_opts(conf)
    conf.set_override("connection", url, group="services_table")
    conf.set_override("connect_timeout", 2, group="services_table")
    return conf


def count(engine, service_id):
    return api.get(engine, service_id).report_count


@pytest.fixture(params=BACKENDS)
def synced_conf(request, tmp_path):
    with database(request.param, tmp_path) as url:
        conf = make_conf(url)
        engine = registry.create_engine(conf)
        registry.db_sync(engine)
        yield conf, engine
        engine.dispose()


@pytest.mark.timeout(60)
def test_heartbeat_registers_and_advances_until_stopped(synced_conf):
    conf, engine = synced_conf
    beat = registry.Heartbeat(
        conf, "h1", "wsgisvc-worker", "worker", report_interval=INTERVAL
    )
    beat.start()
    try:
        assert beat.service_id is not None  # registered at start, not one beat later
        green_wait_for(lambda: count(engine, beat.service_id) >= 3, what="3 heartbeats")
        row = api.get(engine, beat.service_id)
        assert registry.is_up(row, 60)
    finally:
        beat.stop()
    stopped_at = count(engine, beat.service_id)
    backend_sleep(INTERVAL * 4)  # a stopped heartbeat must not beat again
    assert count(engine, beat.service_id) == stopped_at


@pytest.mark.timeout(60)
def test_deleted_row_is_recreated_with_a_warning(synced_conf, caplog):
    conf, engine = synced_conf
    beat = registry.Heartbeat(
        conf, "h1", "wsgisvc-worker", "worker", report_interval=INTERVAL
    )
    beat.start()
    try:
        old_id = beat.service_id
        api.soft_delete(engine, old_id)
        with caplog.at_level(logging.WARNING, logger="wsgisvc.registry.heartbeat"):
            green_wait_for(lambda: beat.service_id != old_id, what="row recreated")
        assert (
            f"Service row {old_id} of wsgisvc-worker on h1 was deleted" in caplog.text
        )
        green_wait_for(
            lambda: count(engine, beat.service_id) >= 2, what="new row beats"
        )
        assert [r.id for r in api.get_all(engine)] == [beat.service_id]
    finally:
        beat.stop()


@pytest.mark.timeout(60)
def test_kill_soft_deletes_the_row(synced_conf):
    conf, engine = synced_conf
    beat = registry.Heartbeat(
        conf, "h1", "wsgisvc-api", "api", report_interval=INTERVAL
    )
    beat.start()
    service_id = beat.service_id
    beat.kill()
    assert api.get(engine, service_id).deleted == service_id
    assert api.get_all(engine) == []


@pytest.mark.timeout(60)
def test_start_without_a_database_keeps_running_and_registers_later(tmp_path, caplog):
    proxy = TcpProxy(backend_port("postgresql"))
    proxy.cut()
    try:
        with database("postgresql", tmp_path, port=proxy.port) as url:
            conf = make_conf(url)
            beat = registry.Heartbeat(
                conf, "h1", "wsgisvc-worker", "w", report_interval=INTERVAL
            )
            with caplog.at_level(logging.INFO, logger="wsgisvc.registry.heartbeat"):
                registry.db_sync(
                    registry.create_engine(
                        make_conf(url.replace(f":{proxy.port}/", ":5432/"))
                    )
                )
                beat.start()
                try:
                    assert beat.service_id is None and not beat.database_reachable
                    proxy.restore()
                    green_wait_for(
                        lambda: beat.service_id is not None, what="late registration"
                    )
                finally:
                    beat.stop()
    finally:
        proxy.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_database_outage_is_survived_and_logged_once_each_way(
    backend, tmp_path, caplog
):
    proxy = TcpProxy(backend_port(backend))
    try:
        with database(backend, tmp_path, port=proxy.port) as url:
            conf = make_conf(url)
            engine = registry.create_engine(conf)
            registry.db_sync(engine)
            beat = registry.Heartbeat(
                conf, "h1", "wsgisvc-worker", "w", report_interval=INTERVAL
            )
            with caplog.at_level(logging.INFO, logger="wsgisvc.registry.heartbeat"):
                beat.start()
                try:
                    sid = beat.service_id
                    green_wait_for(lambda: count(engine, sid) >= 2, what="beats before")
                    proxy.cut()
                    green_wait_for(
                        lambda: not beat.database_reachable, what="loss noticed"
                    )
                    backend_sleep(INTERVAL * 5)  # several failed beats: still one line
                    proxy.restore()
                    green_wait_for(
                        lambda: beat.database_reachable, what="recovery noticed"
                    )
                    before = count(engine, sid)
                    green_wait_for(
                        lambda: count(engine, sid) >= before + 2, what="resumed"
                    )
                finally:
                    beat.stop()
            engine.dispose()
    finally:
        proxy.close()
    lost = [r for r in caplog.records if r.getMessage().startswith("Lost the database")]
    back = [r for r in caplog.records if "Database reachable again" in r.getMessage()]
    assert len(lost) == 1, caplog.text
    assert len(back) == 1, caplog.text
    assert lost[0].levelno == logging.ERROR
    assert "keeps running" in lost[0].getMessage()


@pytest.fixture(params=backend.BACKENDS)
def scheduler(request):
    """The backend a heartbeat's timer runs on in this process: greenthreads
    or threads."""
    if request.param == "eventlet" and sys.modules.get("eventlet", ...) is None:
        pytest.skip("eventlet is kept out of this process (WSGISVC_BACKEND)")
    saved, backend.NAME = backend.NAME, request.param
    try:
        yield request.param
    finally:
        backend.NAME = saved


class _Gate:
    """While closed, holds every statement of the engines other than
    ``spare`` (a database that stalls); notes which engines ran statements
    and which were disposed."""

    def __init__(self, spare: sa.Engine) -> None:
        self.spare = spare
        self.closed = False
        self.holding = backend.Event()
        self.opened = backend.Event()
        self.used: set[sa.Engine] = set()
        self.disposed: set[sa.Engine] = set()

    def before_cursor_execute(self, connection, *args) -> None:
        if connection.engine is self.spare:
            return
        self.used.add(connection.engine)
        if self.closed:
            self.holding.set()
            self.opened.wait()

    def engine_disposed(self, engine: sa.Engine) -> None:
        self.disposed.add(engine)

    def open(self) -> None:
        self.closed = False
        self.opened.set()


@pytest.mark.timeout(60)
def test_a_beat_that_outlives_stop_leaves_no_engine_behind(scheduler, tmp_path, caplog):
    """stop() waits for a beat in progress only so long (issue 24): it then
    disposed the engine under the beat, and the beat, going on, had the
    engine property build a new one (here: its row was deleted meanwhile, so
    it registers again) that nobody disposed: a pool and its connection."""
    with database("sqlite", tmp_path) as url:
        conf = make_conf(url)
        conf.set_override("connect_timeout", 1, group="services_table")
        spare = registry.create_engine(conf)
        registry.db_sync(spare)
        gate = _Gate(spare)
        events = (
            ("before_cursor_execute", gate.before_cursor_execute),
            ("engine_disposed", gate.engine_disposed),
        )
        for name, listener in events:
            sa.event.listen(sa.Engine, name, listener)
        try:
            beat = registry.Heartbeat(
                conf, "h1", "wsgisvc-worker", "w", report_interval=INTERVAL
            )
            beat.start()
            first = beat.service_id
            gate.closed = True
            green_wait_for(gate.holding.is_set, what="a beat held by the database")
            api.soft_delete(spare, first)  # meanwhile, an operator deletes it

            beat.stop()  # gives up waiting for the held beat
            gate.open()

            green_wait_for(
                lambda: [row.id for row in api.get_all(spare)] not in ([], [first]),
                what="the row registered again by the held beat",
            )
            green_wait_for(
                lambda: gate.used <= gate.disposed,
                what=f"every engine disposed: {gate.used - gate.disposed}",
            )
        finally:
            gate.open()
            for name, listener in events:
                sa.event.remove(sa.Engine, name, listener)
            spare.dispose()
