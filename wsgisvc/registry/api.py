"""Reads and writes of the services table.

Every function takes the engine and opens its own short transaction: a
heartbeat or a ``wsgisvc-manage`` command is one statement or two, and must
never hold locks a sibling worker waits on.
"""

from __future__ import annotations

import datetime
import logging

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.orm import Session

from wsgisvc.registry.models import Service, utcnow

LOG = logging.getLogger(__name__)


class ServiceNotFound(LookupError):
    pass


def get_or_create(
    engine: sa.Engine,
    host: str,
    binary: str,
    topic: str | None = None,
    cluster_name: str | None = None,
    version: int = 0,
) -> Service:
    """The live row of (host, binary), created if missing.

    Sibling workers of one service all call this at start; the loser of the
    insert race gets an IntegrityError from the unique key and simply reads
    the winner's row, so the outcome is one row and no error.
    """
    race: exc.DBAPIError | None = None
    for _attempt in range(3):
        row = _find(engine, host, binary)
        if row is None:
            try:
                return _insert(engine, host, binary, topic, cluster_name, version)
            except exc.IntegrityError as error:
                LOG.debug("Service %s on %s created by a sibling", binary, host)
                race = error
                continue
            except exc.OperationalError as error:
                # InnoDB may pick a racing inserter as a deadlock victim.
                if "deadlock" not in str(error).lower():
                    raise
                race = error
                continue
        if (row.topic, row.cluster_name, row.version) != (topic, cluster_name, version):
            _update(
                engine, row.id, topic=topic, cluster_name=cluster_name, version=version
            )
            row = _find(engine, host, binary) or row
        return row
    raise race  # three lost races in a row: let the caller's retry handle it


def _find(engine: sa.Engine, host: str, binary: str) -> Service | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.scalars(
            sa.select(Service).where(
                Service.host == host, Service.binary == binary, Service.deleted == 0
            )
        ).first()


def _insert(engine, host, binary, topic, cluster_name, version) -> Service:
    row = Service(
        host=host,
        binary=binary,
        topic=topic,
        cluster_name=cluster_name,
        version=version,
        report_count=0,
        disabled=False,
        forced_down=False,
        deleted=0,
    )
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add(row)
    LOG.info("Registered service %s on %s (id %s)", binary, host, row.id)
    return row


def _update(engine: sa.Engine, service_id: int, **values) -> int:
    values.setdefault("updated_at", utcnow())
    with engine.begin() as connection:
        result = connection.execute(
            sa.update(Service)
            .where(Service.id == service_id, Service.deleted == 0)
            .values(**values)
        )
        return result.rowcount


def report_state(engine: sa.Engine, service_id: int) -> bool:
    """Bump report_count and last_seen_up; False when the row is gone."""
    now = utcnow()
    return bool(
        _update(
            engine,
            service_id,
            report_count=Service.report_count + 1,
            last_seen_up=now,
            updated_at=now,
        )
    )


def get(engine: sa.Engine, service_id: int) -> Service | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Service, service_id)


def get_all(engine: sa.Engine, include_deleted: bool = False) -> list[Service]:
    query = sa.select(Service).order_by(Service.id)
    if not include_deleted:
        query = query.where(Service.deleted == 0)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query))


def find(engine: sa.Engine, host: str, binary: str) -> Service:
    row = _find(engine, host, binary)
    if row is None:
        raise ServiceNotFound(f"no service {binary} on host {host}")
    return row


def set_disabled(
    engine: sa.Engine, service_id: int, disabled: bool, reason: str | None = None
) -> None:
    _update(
        engine,
        service_id,
        disabled=disabled,
        disabled_reason=reason if disabled else None,
    )


def set_forced_down(engine: sa.Engine, service_id: int, forced_down: bool) -> None:
    _update(engine, service_id, forced_down=forced_down)


def soft_delete(engine: sa.Engine, service_id: int) -> bool:
    """Mark the row deleted (``deleted = id``) so its name is free again."""
    now = utcnow()
    with engine.begin() as connection:
        result = connection.execute(
            sa.update(Service)
            .where(Service.id == service_id, Service.deleted == 0)
            .values(deleted=Service.id, deleted_at=now, updated_at=now)
        )
    return bool(result.rowcount)


def is_up(
    service: Service, service_down_time: float, now: datetime.datetime | None = None
) -> bool:
    """Up: not forced down, and seen (or created) within service_down_time."""
    if service.forced_down:
        return False
    last = service.last_seen_up or service.created_at
    if last is None:
        return False
    elapsed = ((now or utcnow()) - last).total_seconds()
    return elapsed <= service_down_time
