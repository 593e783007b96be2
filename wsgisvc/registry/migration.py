"""Schema migrations of the services table, shipped inside the package.

``db sync`` runs at start of ``wsgisvc-api`` and ``wsgisvc-worker`` on the
SQLite default, so it must be cheap when there is nothing to do and safe when
two processes run it at once.
"""

from __future__ import annotations

import logging
import os

import sqlalchemy as sa
from oslo_config import cfg

from wsgisvc.errors import DatabaseSyncError, SchemaNotCurrent
from wsgisvc.registry import engine as registry_engine

LOG = logging.getLogger(__name__)

_HERE = os.path.dirname(os.path.abspath(__file__))
VERSION_TABLE = "alembic_version"  # alembic's default name

# The newest revision in migrations/versions. Kept here so that a binary whose
# schema is current never imports alembic (a third of a second at every
# start); a test compares it with alembic's own answer, head_revision().
HEAD = "0001"


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
    """Make sure the services table is usable before a binary starts serving.

    The default (``[database] connection`` unset: the SQLite file under
    ``state_path``) is synced here, so binaries run out of the box. A
    configured database is the operator's, migrated by ``wsgisvc-manage db
    sync``: a schema that is missing or behind is refused (SchemaNotCurrent)
    instead of a service that runs on and fails every heartbeat. One that
    cannot be reached is left to the heartbeat, which survives outages.
    """
    registry_engine.register_opts(conf)
    url = registry_engine.connection_url(conf)
    try:
        engine = registry_engine.create_engine(conf)
        try:
            if not conf.database.connection:
                db_sync(engine)
                return
            revision = db_version(engine)
        finally:
            engine.dispose()
    except (OSError, sa.exc.SQLAlchemyError) as error:
        if conf.database.connection:
            LOG.warning("Cannot check the schema of %s yet: %s", _hidden(url), error)
            return
        raise DatabaseSyncError(
            f"cannot create the services table in {url}: {error}"
        ) from error
    if revision != HEAD:
        at = "has no services table" if revision is None else f"is at {revision}"
        raise SchemaNotCurrent(
            f"database {_hidden(url)} {at}, this release needs schema {HEAD}: "
            "run `wsgisvc-manage db sync`"
        )


def _hidden(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)
