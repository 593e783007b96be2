"""Alembic environment: always run with the connection wsgisvc hands over."""

from alembic import context

from wsgisvc.registry.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
