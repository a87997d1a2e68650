"""Incident queries and the state changes responders and integrators make."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection
from app.core.errors import Conflict, NotFound
from app.core.logging import get_logger
from app.core.time import utcnow
from app.incidents.ingest import acknowledged_job, insert_timeline, resolved_job
from app.incidents.models import Alert, AlertStatus, Incident, IncidentStatus, TimelineEntry
from app.jobs.queue import enqueue

log = get_logger(__name__)

# The detail view embeds this many alerts and timeline entries.
DETAIL_ITEMS = 500


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    statuses: tuple[str, ...] = ()
    service_id: uuid.UUID | None = None


def incidents_query(filters: IncidentFilter) -> Select[Incident]:
    statement = select(Incident)
    if filters.statuses:
        statement = statement.where(Incident.status.in_(filters.statuses))
    if filters.service_id is not None:
        statement = statement.where(Incident.service_id == filters.service_id)
    return statement


async def get_incident(
    session: AsyncSession, incident_id: uuid.UUID, *, lock: bool = False
) -> Incident:
    statement = select(Incident).where(Incident.id == incident_id)
    if lock:
        statement = statement.with_for_update()
    incident = await session.scalar(statement.execution_options(populate_existing=True))
    if incident is None:
        raise NotFound(f"Incident {incident_id} does not exist.", field="incident_id")
    return incident


async def list_alerts(session: AsyncSession, incident_id: uuid.UUID, limit: int) -> list[Alert]:
    statement = (
        select(Alert)
        .where(Alert.incident_id == incident_id)
        .order_by(Alert.created_at, Alert.id)
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


async def list_timeline(
    session: AsyncSession, incident_id: uuid.UUID, limit: int
) -> list[TimelineEntry]:
    statement = (
        select(TimelineEntry)
        .where(TimelineEntry.incident_id == incident_id)
        .order_by(TimelineEntry.at, TimelineEntry.id)
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


def _describe(actor: dict[str, Any]) -> str:
    return str(actor.get("name") or actor.get("type"))


async def acknowledge(
    session: AsyncSession, incident_id: uuid.UUID, *, actor: dict[str, Any]
) -> Incident:
    """Acknowledge a triggered incident, which stops its escalation.

    Acknowledging an incident that is already acknowledged changes nothing and is not an
    error; a resolved or closed incident cannot be acknowledged (409).
    """
    incident = await get_incident(session, incident_id, lock=True)
    if incident.status == IncidentStatus.acknowledged:
        return incident
    if incident.status != IncidentStatus.triggered:
        raise Conflict(
            f"Incident {incident_id} is {incident.status}; only a triggered incident "
            "can be acknowledged.",
        )
    now = utcnow()
    incident.status = IncidentStatus.acknowledged
    incident.acknowledged_at = now
    incident.acknowledged_by = actor
    incident.updated_at = now
    await session.flush()
    connection = await raw_connection(session)
    await insert_timeline(
        connection,
        [(incident.id, "incident.acknowledged", f"Acknowledged by {_describe(actor)}", {})],
        actor=actor,
        now=now,
    )
    await enqueue(connection, [acknowledged_job(incident.id)])
    log.info("incident.acknowledged", incident_id=str(incident.id), by=_describe(actor))
    return incident


async def resolve(
    session: AsyncSession, incident_id: uuid.UUID, *, actor: dict[str, Any]
) -> Incident:
    """Resolve an open incident and its firing alerts; a later trigger opens a new incident.

    Resolving an incident that is already resolved changes nothing and is not an error.
    """
    incident = await get_incident(session, incident_id, lock=True)
    if incident.status in (IncidentStatus.resolved, IncidentStatus.closed):
        return incident
    now = utcnow()
    incident.status = IncidentStatus.resolved
    incident.resolved_at = now
    incident.resolved_by = actor
    incident.updated_at = now
    await session.execute(
        update(Alert)
        .where(Alert.incident_id == incident.id, Alert.status == AlertStatus.firing)
        .values(status=AlertStatus.resolved, resolved_at=now, updated_at=now)
    )
    await session.flush()
    connection = await raw_connection(session)
    await insert_timeline(
        connection,
        [(incident.id, "incident.resolved", f"Resolved by {_describe(actor)}", {})],
        actor=actor,
        now=now,
    )
    await enqueue(connection, [resolved_job(incident.id)])
    log.info("incident.resolved", incident_id=str(incident.id), by=_describe(actor))
    return incident
