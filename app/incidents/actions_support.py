"""Snooze and manual escalation for the action channels (links, Slack, SMS, web pages).

Snoozing goes through the lifecycle service: the incident is acknowledged with
``snoozed_until`` set, and a durable job triggers it again at that time.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection
from app.core.errors import Conflict
from app.core.logging import get_logger
from app.core.time import isoformat, utcnow
from app.escalation import engine
from app.escalation.models import EscalationLevel, EscalationPolicy
from app.incidents import service
from app.incidents.models import OPEN_STATUSES, Incident, IncidentStatus
from app.incidents.repository import escalation_job, insert_timeline
from app.jobs.queue import enqueue
from app.services.models import Service

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


async def _load_snapshot(session: AsyncSession, incident: Incident) -> dict[str, Any] | None:
    owner = await session.get(Service, incident.service_id)
    policy_id = incident.escalation_policy_id or (owner.escalation_policy_id if owner else None)
    if policy_id is None:
        return None
    policy = await session.get(EscalationPolicy, policy_id)
    if policy is None:
        return None
    levels = await session.scalars(
        select(EscalationLevel).where(EscalationLevel.policy_id == policy.id)
    )
    return engine.snapshot(policy, list(levels))


async def escalate(
    session: AsyncSession, incident_id: uuid.UUID, *, actor: dict[str, Any]
) -> Incident:
    """Page the incident's next escalation step now; an acknowledged incident triggers again.

    Raises Conflict when the incident is not open or its policy has no step left.
    """
    incident = await service.get_incident(session, incident_id, lock=True)
    if incident.status not in OPEN_STATUSES:
        raise Conflict(
            f"Incident {incident_id} is {incident.status}; only an open incident can be escalated.",
            field="status",
        )
    if incident.escalation_snapshot is None:
        incident.escalation_snapshot = await _load_snapshot(session, incident)
    frozen = incident.escalation_snapshot
    step = incident.escalation_step
    if frozen is None or step >= engine.total_steps(frozen):
        raise Conflict(
            f"Incident {incident_id} has no escalation level left to page.",
            field="escalation_step",
        )
    plan = engine.plan_step(frozen, step)
    assert plan is not None  # step < total_steps

    # A new epoch stops the step's regular job, which may be queued for later; the step
    # runs now instead and schedules the following one as usual.
    now = utcnow()
    incident.status = IncidentStatus.triggered
    incident.acknowledged_at = None
    incident.acknowledged_by = None
    incident.snoozed_until = None
    incident.escalation_epoch += 1
    incident.updated_at = now
    await session.flush()

    connection = await raw_connection(session)
    await insert_timeline(
        connection,
        [
            (
                incident.id,
                "incident.escalated",
                f"Escalated to level {plan.level_index + 1} by {service.describe(actor)}",
                {"step": step, **service.actor_data(actor)},
            )
        ],
        actor=actor,
        now=now,
    )
    await enqueue(connection, [escalation_job(incident.id, step, incident.escalation_epoch)])
    log.info("incident.escalated", incident_id=str(incident.id), step=step)
    return incident
