"""Schema migrations of the services table, shipped inside the package.

``db sync`` runs on the SQLite default when ``wsgisvc-worker`` starts and
when ``wsgisvc-api`` registers its row, so it must be cheap when there is
nothing to do and safe when two processes run it at once.
"""

from __future__ import annotations

import logging
import os

import sqlalchemy as sa
from oslo_config import cfg

from wsgisvc.errors import DatabaseSyncError
from wsgisvc.registry import engine as registry_engine
from wsgisvc.registry import schema
from wsgisvc.registry.schema import HEAD, VERSION_TABLE

LOG = logging.getLogger(__name__)

_HERE = os.path.dirname(os.path.abspath(__file__))


def _alembic_config(connection: sa.Connection | None = None):
    from alembic.config import Config

    config = Config(os.path.join(_HERE, "alembic.ini"))
    config.set_main_option("script_location", os.path.join(_HERE, "migrations"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The head revision according to alembic (reads the scripts)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def db_version(engine: sa.Engine) -> str | None:
    """The revision the database is at; ``None`` for an empty database.

    Read directly (not through alembic's MigrationContext, which logs two
    INFO lines each time) because every binary asks at start.
    """
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(VERSION_TABLE):
            return None
        revisions = connection.execute(
            sa.text(f"SELECT version_num FROM {VERSION_TABLE}")
        ).scalars()
        return next(iter(revisions), None)


def db_sync(engine: sa.Engine, revision: str = "head") -> str | None:
    """Upgrade the schema to ``revision``; return the revision reached.

    Two binaries starting together may both try; the loser's error is
    ignored when the winner already brought the schema to ``head``.
    """
    if revision == "head" and db_version(engine) == HEAD:
        return HEAD
    from alembic import command

    try:
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), revision)
    except sa.exc.DBAPIError:
        if revision != "head" or db_version(engine) != HEAD:
            raise
        LOG.debug("Schema upgraded concurrently by another process")
    reached = db_version(engine)
    LOG.info("Database %s is at schema revision %s", _safe_url(engine), reached)
    return reached


def _safe_url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def prepare_database(conf: cfg.ConfigOpts) -> None:
    """Make sure the services table is usable before a binary's workers use it:
    a configured database must be current (``schema.check``), the SQLite
    default is synced (``sync_default``)."""
    schema.check(conf)
    sync_default(conf)


def sync_default(conf: cfg.ConfigOpts) -> None:
    """Bring the default (``[services_table] connection`` unset: the SQLite file
    under ``state_path``) to ``HEAD``, so binaries run out of the box; a
    configured database is the operator's, and left alone."""
    url = schema.connection_url(conf)
    if conf.services_table.connection:
        return
    try:
        engine = registry_engine.create_engine(conf)
        try:
            db_sync(engine)
        finally:
            engine.dispose()
    except (OSError, sa.exc.SQLAlchemyError) as error:
        raise DatabaseSyncError(
            f"cannot create the services table in {url}: {error}"
        ) from error
