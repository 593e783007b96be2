"""A service's heartbeat: its row in the services table, kept fresh.

Used by both the RPC ``Service`` and ``WSGIService``. The database is a
witness, not a dependency: when it goes away the service keeps serving, the
loss is logged once, the recovery is logged once (with how long it lasted),
and the row (recreated if someone deleted it) resumes counting.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy import exc

from wsgisvc import loopingcall, metrics
from wsgisvc.registry import api, engine, schema

LOG = logging.getLogger(__name__)

# What an unreachable or failing database raises on the way to us.
DB_ERRORS = (exc.SQLAlchemyError, OSError)


class Heartbeat:
    """Register (host, binary) and bump its row every ``report_interval``."""

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        host: str,
        binary: str,
        topic: str | None = None,
        cluster: str | None = None,
        version: int = 0,
        report_interval: float | None = None,
    ):
        schema.register_opts(conf)
        self.conf = conf
        self.host = host
        self.binary = binary
        self.topic = topic
        self.cluster = cluster
        self.version = version
        self.report_interval = report_interval or conf.report_interval
        self.service_id: int | None = None
        self._engine: sa.Engine | None = None
        # Beats in progress, by the engine each began with; a lock, as beats
        # run on the timer's thread (threading backend) while stop() runs.
        self._in_use: collections.Counter[sa.Engine] = collections.Counter()
        self._lock = threading.Lock()
        self._timer: loopingcall.FixedIntervalLoopingCall | None = None
        self._lost_since: float | None = None

    @property
    def engine(self) -> sa.Engine:
        # Created on first use, in the process that uses it: never across fork.
        if self._engine is None:
            self._engine = engine.create_engine(self.conf)
        return self._engine

    @property
    def database_reachable(self) -> bool:
        return self._lost_since is None

    def register(self) -> None:
        """Create or update the row now and count it as the first beat, so the
        service is up from this moment; if the database does not answer, the
        loss is logged and the first heartbeat registers instead."""
        self.report_state()

    def start(self) -> None:
        """Register the row (unless done already) and start beating."""
        if self.service_id is None:
            self.register()
        self._timer = loopingcall.FixedIntervalLoopingCall(self.report_state)
        self._timer.start(
            self.report_interval,
            initial_delay=self.report_interval,
            stop_on_exception=False,
        )

    def stop(self) -> None:
        """Stop beating. A beat in progress may finish, but a database that
        stopped answering must not hold up a service's shutdown: the wait
        for it is bounded, and a beat still going then disposes its engine
        itself when it ends."""
        if self._timer is not None:
            self._timer.stop()
            self._timer.wait(timeout=2 * self.conf.services_table.connect_timeout)
            self._timer = None
        self._drop_engine()

    def kill(self) -> None:
        """Stop beating and soft-delete the row, freeing its name."""
        service_id = self.service_id
        self.stop()
        if service_id is None:
            return
        try:
            api.soft_delete(self.engine, service_id)
            LOG.info(
                "Deleted service %s on %s (id %s)", self.binary, self.host, service_id
            )
        except DB_ERRORS as error:
            LOG.error("Could not delete service row %s: %s", service_id, error)
        finally:
            self._drop_engine()

    def report_state(self) -> None:
        """One heartbeat; database trouble is logged (once) and survived.

        The beat uses the engine it began with throughout: stop() may give up
        waiting for it and drop that engine, and ``engine`` would then build
        a new one for the rest of the beat that nobody disposes.
        """
        engine = self._take_engine()
        try:
            self._beat(engine)
        finally:
            self._release_engine(engine)

    def _beat(self, engine: sa.Engine) -> None:
        try:
            if self.service_id is None:
                self._register(engine)
            if not api.report_state(engine, self.service_id):
                LOG.warning(
                    "Service row %s of %s on %s was deleted; recreating it",
                    self.service_id,
                    self.binary,
                    self.host,
                )
                self._register(engine)
                api.report_state(engine, self.service_id)
        except DB_ERRORS as error:
            metrics.heartbeat(self.binary, ok=False)
            self._lost(error)
            return
        metrics.heartbeat(self.binary, ok=True)
        self._recovered()

    def _register(self, engine: sa.Engine) -> None:
        row = api.get_or_create(
            engine, self.host, self.binary, self.topic, self.cluster, self.version
        )
        self.service_id = row.id

    def _take_engine(self) -> sa.Engine:
        with self._lock:
            engine = self.engine
            self._in_use[engine] += 1
            return engine

    def _release_engine(self, engine: sa.Engine) -> None:
        """A beat is done with ``engine``: dispose it if it was dropped
        meanwhile (_drop_engine) and no other beat uses it."""
        with self._lock:
            self._in_use[engine] -= 1
            if self._in_use[engine]:
                return
            del self._in_use[engine]
            if engine is self._engine:
                return
        engine.dispose()

    def _drop_engine(self) -> None:
        """Forget the engine; dispose it now, unless a beat still uses it:
        that beat disposes it when it ends (_release_engine)."""
        with self._lock:
            engine, self._engine = self._engine, None
            if engine is None or engine in self._in_use:
                return
        engine.dispose()

    def _lost(self, error: Exception) -> None:
        if self._lost_since is not None:
            LOG.debug("Database still unreachable: %s", error)
            return
        self._lost_since = time.monotonic()
        LOG.error(
            "Lost the database while reporting state of %s on %s: %s; the service "
            "keeps running and retries every %s s",
            self.binary,
            self.host,
            _one_line(error),
            self.report_interval,
        )

    def _recovered(self) -> None:
        if self._lost_since is None:
            return
        outage = time.monotonic() - self._lost_since
        self._lost_since = None
        LOG.warning(
            "Database reachable again after %.1f s; heartbeat of %s on %s resumed",
            outage,
            self.binary,
            self.host,
        )


def _one_line(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
