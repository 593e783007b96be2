"""The services table: one row per (host, binary) a service runs as.

Soft delete keeps history and frees the name: a deleted row has
``deleted = id``, so the unique key (host, binary, deleted) admits a fresh row
with ``deleted = 0`` for the same host and binary.
"""

from __future__ import annotations

import datetime
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Microseconds on MariaDB too, whose plain DATETIME drops them: heartbeats a
# second apart must compare correctly.
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def utcnow() -> datetime.datetime:
    """Naive UTC: every backend stores it the same way."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Service(Base):
    __tablename__ = "services"
    __table_args__ = (
        sa.UniqueConstraint(
            "host", "binary", "deleted", name="uniq_services0host0binary0deleted"
        ),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(
        sa.String(36), unique=True, default=lambda: str(uuid.uuid4())
    )
    host: Mapped[str] = mapped_column(sa.String(255))
    binary: Mapped[str] = mapped_column(sa.String(255))
    topic: Mapped[str | None] = mapped_column(sa.String(255))
    cluster_name: Mapped[str | None] = mapped_column(sa.String(255))
    report_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    disabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(255))
    forced_down: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    last_seen_up: Mapped[datetime.datetime | None] = mapped_column(Timestamp)
    version: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[datetime.datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime.datetime | None] = mapped_column(Timestamp)
    deleted_at: Mapped[datetime.datetime | None] = mapped_column(Timestamp)
    deleted: Mapped[int] = mapped_column(sa.Integer, default=0)

    def __repr__(self) -> str:
        return f"<Service {self.id} {self.binary} on {self.host}>"
