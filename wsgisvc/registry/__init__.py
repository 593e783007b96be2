"""The services table: who runs where, and whether it is up.

``schema`` says where the table lives and whether its schema is current,
``models`` defines the table, ``migration`` ships its alembic history,
``engine`` connects to ``[services_table] connection`` (default: a SQLite file under
``state_path``), ``api`` reads and writes rows, ``heartbeat`` keeps a
service's row fresh.

Only ``schema`` is light. An API's parent imports this package before it forks
its workers, and they must not carry SQLAlchemy or alembic, so the names from
the other modules are imported when first used (``__getattr__``).
"""

import importlib

from wsgisvc.errors import DatabaseSyncError, SchemaNotCurrent
from wsgisvc.registry.schema import check as check_schema
from wsgisvc.registry.schema import connection_url, register_opts

_LAZY = {
    "Heartbeat": "heartbeat",
    "create_engine": "engine",
    "db_sync": "migration",
    "db_version": "migration",
    "is_up": "api",
    "prepare_database": "migration",
    "sync_default": "migration",
}

__all__ = [
    "DatabaseSyncError",
    "SchemaNotCurrent",
    "check_schema",
    "connection_url",
    "register_opts",
    *_LAZY,
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
