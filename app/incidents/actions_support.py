"""Snooze and manual escalation for the action channels (links, Slack, SMS, web pages).

Snoozing goes through the lifecycle service: the incident is acknowledged with
``snoozed_until`` set, and a durable job triggers it again at that time.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict
from app.core.logging import get_logger
from app.core.time import isoformat, utcnow
from app.escalation import engine
from app.incidents import escalation_actions, service
from app.incidents.models import OPEN_STATUSES, Incident, IncidentStatus

log = get_logger(__name__)


def clock(value: datetime) -> str:
    """Format a time as ``09:14 UTC``, the way pages and timeline messages show it."""
    return isoformat(value)[11:16] + " UTC"


def snoozed_until(incident: Incident) -> datetime | None:
    """Return when the incident's snooze ends, or None when it is not snoozed."""
    if incident.status != IncidentStatus.acknowledged:
        return None
    return incident.snoozed_until


async def snooze(
    session: AsyncSession, incident_id: uuid.UUID, *, duration: timedelta, actor: dict[str, Any]
) -> Incident:
    return await service.snooze(session, incident_id, until=utcnow() + duration, actor=actor)


async def escalate(
    session: AsyncSession, incident_id: uuid.UUID, *, actor: dict[str, Any]
) -> Incident:
    """Page the incident's next escalation level now; an acknowledged incident triggers again.

    Raises Conflict when the incident is not open or its policy has no level left.
    """
    incident = await service.get_incident(session, incident_id, lock=True)
    if incident.status not in OPEN_STATUSES:
        raise Conflict(
            f"Incident {incident_id} is {incident.status}; only an open incident can be escalated.",
            field="status",
        )
    frozen = await escalation_actions.ensure_snapshot(session, incident)
    plan = engine.plan_step(frozen, incident.escalation_position) if frozen else None
    if plan is None:
        raise Conflict(
            f"Incident {incident_id} has no escalation level left to page.",
            field="escalation_step",
        )
    return await escalation_actions.escalate(
        session, incident_id, level=plan.level_index + 1, actor=actor
    )
