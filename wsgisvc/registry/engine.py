"""The engine for ``[database] connection``, with a usable default.

The default is a SQLite file ``wsgisvc.sqlite`` under ``state_path`` so a
service runs with no database server at all. Engines are created where they
are used (after a fork, in the worker), never inherited across ``fork()``.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from oslo_config import cfg

from wsgisvc import opts


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(opts.service_opts)
    # By name, not the shared OptGroup object: oslo.config keeps overrides in
    # the group object, so sharing it would leak them between ConfigOpts.
    conf.register_opts(opts.database_opts, group=opts.database_group.name)


def connection_url(conf: cfg.ConfigOpts) -> str:
    """``[database] connection``, or the SQLite file under ``state_path``."""
    register_opts(conf)
    if conf.database.connection:
        return conf.database.connection
    path = os.path.join(os.path.expanduser(conf.state_path), "wsgisvc.sqlite")
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets sibling workers heartbeat while `wsgisvc-manage` reads.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def create_engine(conf: cfg.ConfigOpts, url: str | None = None) -> sa.Engine:
    """An engine that fails fast on an unreachable server and recovers from
    dropped connections (``pool_pre_ping``)."""
    url = url or connection_url(conf)
    timeout = conf.database.connect_timeout
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
