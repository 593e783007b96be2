"""The engine for ``[services_table] connection``, with a usable default.

The default is a SQLite file ``wsgisvc.sqlite`` under ``state_path`` so a
service runs with no database server at all (``schema.connection_url``).
Engines are created where they are used (after a fork, in the process that
uses them), never inherited across ``fork()``.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from oslo_config import cfg

from wsgisvc.registry.schema import connection_url, driver_missing


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets sibling workers heartbeat while `wsgisvc-manage` reads.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def create_engine(conf: cfg.ConfigOpts, url: str | None = None) -> sa.Engine:
    """An engine that fails fast on an unreachable server and recovers from
    dropped connections (``pool_pre_ping``). A driver that is not installed
    is DatabaseDriverMissing, one line naming the extra to install."""
    url = url or connection_url(conf)
    try:
        return _create_engine(url, conf.services_table.connect_timeout)
    except ModuleNotFoundError as error:
        raise driver_missing(url, error) from error


def _create_engine(url: str, timeout: float) -> sa.Engine:
    backend = sa.engine.make_url(url).get_backend_name()
    if backend == "sqlite":
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(database)), exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": timeout})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_recycle=3600,
        connect_args={"connect_timeout": timeout},
    )
