"""Schema migrations of the services table, shipped inside the package.

``db sync`` runs at start of ``wsgisvc-api`` and ``wsgisvc-worker`` on the
SQLite default, so it must be cheap when there is nothing to do and safe when
two processes run it at once.
"""

from __future__ import annotations

import logging
import os

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

LOG = logging.getLogger(__name__)

_HERE = os.path.dirname(os.path.abspath(__file__))


def _alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config(os.path.join(_HERE, "alembic.ini"))
    config.set_main_option("script_location", os.path.join(_HERE, "migrations"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def db_version(engine: sa.Engine) -> str | None:
    """The revision the database is at; ``None`` for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def db_sync(engine: sa.Engine, revision: str = "head") -> str | None:
    """Upgrade the schema to ``revision``; return the revision reached."""
    if revision == "head" and db_version(engine) == head_revision():
        return head_revision()
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)
    reached = db_version(engine)
    LOG.info("Database %s is at schema revision %s", _safe_url(engine), reached)
    return reached


def _safe_url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
