"""Where the services table lives, and whether its schema is current.

An API asks before it binds, in the parent whose modules every worker
inherits, so the question is put with the DB-API driver alone: the revision
alembic wrote in ``alembic_version`` against ``HEAD``. Neither SQLAlchemy nor
alembic is imported for it. A URL whose driver has no reader here (one this
package does not test against) is asked through SQLAlchemy instead.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from collections.abc import Callable
from typing import Any
from urllib import parse

from oslo_config import cfg

from wsgisvc import DISTRIBUTION, opts
from wsgisvc.errors import DatabaseDriverMissing, SchemaNotCurrent

LOG = logging.getLogger(__name__)

# The newest revision in migrations/versions. Kept here so that no binary
# imports alembic to compare; a test compares it with alembic's own head.
HEAD = "0001"
VERSION_TABLE = "alembic_version"  # alembic's default name


def register_opts(conf: cfg.ConfigOpts) -> None:
    opts.register(conf, opts.service_opts)
    opts.register(conf, opts.services_table_opts, opts.services_table_group.name)


def connection_url(conf: cfg.ConfigOpts) -> str:
    """``[services_table] connection``, or the SQLite file under ``state_path``."""
    register_opts(conf)
    if conf.services_table.connection:
        return conf.services_table.connection
    path = os.path.join(os.path.expanduser(conf.state_path), "wsgisvc.sqlite")
    return f"sqlite:///{path}"


def hide_password(url: str) -> str:
    """``url`` as a log line may show it: the password as ``***``."""
    parts = parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
    return parse.urlunsplit(parts._replace(netloc=netloc))


def check(conf: cfg.ConfigOpts) -> None:
    """Refuse a configured database whose schema is not ``HEAD``.

    A configured ``[services_table] connection`` is the operator's, migrated by
    ``wsgisvc-manage db sync``: missing or behind, it is refused
    (SchemaNotCurrent) instead of a service that runs on and fails every
    heartbeat. One that cannot be reached is left to the heartbeat, which
    survives outages. The SQLite default is not checked: it is synced
    (``migration.sync_default``).
    """
    register_opts(conf)
    url = conf.services_table.connection
    if not url:
        return
    try:
        at = revision(url, conf.services_table.connect_timeout)
    except ModuleNotFoundError as error:
        raise driver_missing(url, error) from error
    except Exception as error:  # noqa: BLE001 - any driver's error: not reachable
        LOG.warning("Cannot check the schema of %s yet: %s", hide_password(url), error)
        return
    if at != HEAD:
        where = "has no services table" if at is None else f"is at {at}"
        raise SchemaNotCurrent(
            f"database {hide_password(url)} {where}, this release needs schema "
            f"{HEAD}: run `wsgisvc-manage db sync`"
        )


# The extras of wsgisvc-server that install a driver, by its module.
_EXTRAS = {"psycopg": "postgresql", "pymysql": "mysql"}


def driver_missing(url: str, error: ModuleNotFoundError) -> DatabaseDriverMissing:
    """The one line for a URL whose driver module is not installed."""
    extra = _EXTRAS.get((error.name or "").partition(".")[0])
    install = (
        f"pip install '{DISTRIBUTION}[{extra}]'"
        if extra
        else "install it, or use postgresql+psycopg:// or mysql+pymysql:// "
        f"(pip install '{DISTRIBUTION}[postgresql]' or '{DISTRIBUTION}[mysql]')"
    )
    return DatabaseDriverMissing(
        f"[services_table] connection {hide_password(url)} needs the driver "
        f"{error.name!r}, which is not installed: {install}"
    )


def revision(url: str, timeout: float) -> str | None:
    """The revision the database at ``url`` is at; None when it has none.

    Raises whatever the driver raises when the database cannot be reached.
    """
    parts = parse.urlsplit(url)
    reader = _READERS.get(parts.scheme)
    if reader is None:
        return _revision_through_sqlalchemy(url)
    driver = importlib.import_module(reader.module)
    connection = reader.connect(driver, parts, timeout)
    if connection is None:
        return None
    try:
        cursor = connection.cursor()
        cursor.execute(reader.has_version_table)
        (count,) = cursor.fetchone()
        if not count:
            return None
        cursor.execute(f"SELECT version_num FROM {VERSION_TABLE}")
        row = cursor.fetchone()
        return row[0] if row else None
    finally:
        connection.close()


def _revision_through_sqlalchemy(url: str) -> str | None:
    # Only for drivers without a reader above: their users pay for the ORM here.
    import sqlalchemy as sa

    from wsgisvc.registry import migration

    engine = sa.create_engine(url)
    try:
        return migration.db_version(engine)
    finally:
        engine.dispose()


def _server_args(parts: parse.SplitResult) -> dict[str, Any]:
    """host, port, user, password, database and the query, as SQLAlchemy
    reads them from a URL (it hands the query to the driver as keywords)."""
    args = {
        "host": parts.hostname,
        "port": parts.port,
        "user": parse.unquote(parts.username) if parts.username else None,
        "password": parse.unquote(parts.password) if parts.password else None,
        "database": parse.unquote(parts.path[1:]) or None,
    }
    args.update(parse.parse_qsl(parts.query))
    return {name: value for name, value in args.items() if value is not None}


def _connect_psycopg(psycopg, parts: parse.SplitResult, timeout: float):
    args = _server_args(parts)
    if "database" in args:
        args["dbname"] = args.pop("database")
    return psycopg.connect(connect_timeout=int(timeout), **args)


def _connect_pymysql(pymysql, parts: parse.SplitResult, timeout: float):
    return pymysql.connect(connect_timeout=timeout, **_server_args(parts))


def _connect_sqlite(sqlite3, parts: parse.SplitResult, timeout: float):
    """None for a file that does not exist (or memory): no schema there yet."""
    path = parts.path[1:]
    if not path or path == ":memory:" or not os.path.exists(path):
        return None
    return sqlite3.connect(path, timeout=timeout)


@dataclasses.dataclass(frozen=True)
class _Reader:
    module: str  # the DB-API driver SQLAlchemy would use for this URL
    connect: Callable[[Any, parse.SplitResult, float], Any]
    has_version_table: str  # one row, one number: 0 when there is none


_POSTGRESQL = _Reader(
    "psycopg",
    _connect_psycopg,
    # to_regclass looks along search_path, as the SELECT that follows does.
    f"SELECT count(to_regclass('{VERSION_TABLE}'))",
)
_MYSQL = _Reader(
    "pymysql",
    _connect_pymysql,
    "SELECT count(*) FROM information_schema.tables "
    f"WHERE table_schema = DATABASE() AND table_name = '{VERSION_TABLE}'",
)
_SQLITE = _Reader(
    "sqlite3",
    _connect_sqlite,
    f"SELECT count(*) FROM sqlite_master WHERE type = 'table' "
    f"AND name = '{VERSION_TABLE}'",
)
# By URL scheme; a bare ``postgresql://`` or ``mysql://`` means SQLAlchemy's
# default driver (psycopg2, mysqlclient), which is not read here.
_READERS = {
    "postgresql+psycopg": _POSTGRESQL,
    "mysql+pymysql": _MYSQL,
    "mariadb+pymysql": _MYSQL,
    "sqlite": _SQLITE,
    "sqlite+pysqlite": _SQLITE,
}
