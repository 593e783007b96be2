"""The services table: who runs where, and whether it is up.

``models`` defines the table, ``migration`` ships its alembic history,
``engine`` connects to ``[database] connection`` (default: a SQLite file under
``state_path``), ``api`` reads and writes rows, ``heartbeat`` keeps a
service's row fresh.
"""

from wsgisvc.errors import DatabaseSyncError, SchemaNotCurrent
from wsgisvc.registry.api import is_up
from wsgisvc.registry.engine import connection_url, create_engine
from wsgisvc.registry.heartbeat import Heartbeat
from wsgisvc.registry.migration import db_sync, db_version, prepare_database

__all__ = [
    "DatabaseSyncError",
    "Heartbeat",
    "SchemaNotCurrent",
    "connection_url",
    "create_engine",
    "db_sync",
    "db_version",
    "is_up",
    "prepare_database",
]
