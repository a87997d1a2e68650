"""Snooze and manual escalation of incidents, and the job that ends a snooze.

A snoozed incident is acknowledged, with the snooze's end stored as ``snoozed_until`` in
``acknowledged_by``, so it keeps its place under the open-incident unique index and
escalation stays stopped. A durable job at the end time triggers it again and pages the
escalation level that was paged last.
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
from app.incidents import paging
from app.incidents.ingest import insert_timeline
from app.incidents.models import OPEN_STATUSES, Incident, IncidentStatus
from app.incidents.service import _actor_data, _describe, get_incident
from app.jobs.queue import ESCALATION_STEP, Job, enqueue
from app.notify import delivery
from app.oncall import service as oncall
from app.services.models import Service

log = get_logger(__name__)

SNOOZE_ENDED = "incident.snooze_ended"


def clock(value: datetime) -> str:
    """Format a time as ``09:14 UTC``, the way pages and timeline messages show it."""
    return isoformat(value)[11:16] + " UTC"


def snoozed_until(incident: Incident) -> datetime | None:
    """Return when the incident's snooze ends, or None when it is not snoozed."""
    if incident.status != IncidentStatus.acknowledged or not incident.acknowledged_by:
        return None
    value = incident.acknowledged_by.get("snoozed_until")
    return datetime.fromisoformat(value) if value else None


def snooze_job(incident_id: uuid.UUID, until: datetime, delay: timedelta) -> Job:
    until_text = isoformat(until)
    return Job(
        SNOOZE_ENDED,
        {"incident_id": incident_id, "until": until_text},
        delay=delay,
        dedupe_key=f"{SNOOZE_ENDED}:{incident_id}:{until_text}",
    )


async def snooze(
    session: AsyncSession, incident_id: uuid.UUID, *, duration: timedelta, actor: dict[str, Any]
) -> Incident:
    """Acknowledge an open incident until ``now + duration``; then it triggers again.

    Snoozing again replaces the end time. A resolved or closed incident raises Conflict.
    """
    incident = await get_incident(session, incident_id, lock=True)
    if incident.status not in OPEN_STATUSES:
        raise Conflict(
            f"Incident {incident_id} is {incident.status}; only an open incident can be snoozed."
        )
    now = utcnow()
    until = now + duration
    incident.status = IncidentStatus.acknowledged
    incident.acknowledged_at = now
    incident.acknowledged_by = {**actor, "snoozed_until": isoformat(until)}
    incident.updated_at = now
    await session.flush()

    connection = await raw_connection(session)
    await insert_timeline(
        connection,
        [
            (
                incident.id,
                "incident.snoozed",
                f"Snoozed until {clock(until)} by {_describe(actor)}",
                {"until": isoformat(until), **_actor_data(actor)},
            )
        ],
        actor=actor,
        now=now,
    )
    await enqueue(connection, [snooze_job(incident.id, until, duration)])
    log.info("incident.snoozed", incident_id=str(incident.id), until=isoformat(until))
    return incident


async def _load_snapshot(session: AsyncSession, incident: Incident) -> dict[str, Any] | None:
    service = await session.get(Service, incident.service_id)
    policy_id = incident.escalation_policy_id or (service.escalation_policy_id if service else None)
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
    incident = await get_incident(session, incident_id, lock=True)
    if incident.status not in OPEN_STATUSES:
        raise Conflict(
            f"Incident {incident_id} is {incident.status}; only an open incident can be escalated."
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
    now = utcnow()
    incident.status = IncidentStatus.triggered
    incident.acknowledged_at = None
    incident.acknowledged_by = None
    incident.updated_at = now
    await session.flush()

    connection = await raw_connection(session)
    level = f"level {plan.level_index + 1}"
    await insert_timeline(
        connection,
        [
            (
                incident.id,
                "incident.escalated",
                f"Escalated to {level} by {_describe(actor)}",
                {"step": step, **_actor_data(actor)},
            )
        ],
        actor=actor,
        now=now,
    )
    # A key of its own: the step's regular job may already be queued for later, and
    # pgqueuer would drop a job whose key matches a queued one.
    job = Job(
        ESCALATION_STEP,
        {"incident_id": incident.id, "step": step},
        dedupe_key=f"{ESCALATION_STEP}:{incident.id}:{step}:escalated",
    )
    await enqueue(connection, [job])
    log.info("incident.escalated", incident_id=str(incident.id), step=step)
    return incident


async def end_snooze(context: paging.PagingContext, incident_id: uuid.UUID, until: str) -> None:
    """Trigger a snoozed incident again and page its last paged level.

    Skips when the incident was resolved, triggered again or snoozed anew meanwhile.
    """
    async with context.sessionmaker() as session, session.begin():
        incident = await session.scalar(
            select(Incident).where(Incident.id == incident_id).with_for_update()
        )
        current = snoozed_until(incident) if incident is not None else None
        if incident is None or current is None or isoformat(current) != until:
            log.info("snooze.end_skipped", incident_id=str(incident_id), until=until)
            return
        now = utcnow()
        incident.status = IncidentStatus.triggered
        incident.acknowledged_at = None
        incident.acknowledged_by = None
        incident.updated_at = now
        await session.flush()
        connection = await raw_connection(session)
        await insert_timeline(
            connection,
            [(incident.id, "incident.snooze_ended", "Snooze ended; triggered again", {})],
            actor=paging.SYSTEM_ACTOR,
            now=now,
        )
        if incident.escalation_step == 0:
            # Nothing was paged before the snooze: start escalation from its first level.
            await enqueue(connection, [_step_job(incident.id, 0, None, until)])
        else:
            await _page_again(context, session, incident, until)
        log.info("snooze.ended", incident_id=str(incident.id))


def _step_job(incident_id: uuid.UUID, step: int, delay: timedelta | None, until: str) -> Job:
    return Job(
        ESCALATION_STEP,
        {"incident_id": incident_id, "step": step},
        delay=delay,
        dedupe_key=f"{ESCALATION_STEP}:{incident_id}:{step}:after-snooze:{until}",
    )


async def _page_again(
    context: paging.PagingContext, session: AsyncSession, incident: Incident, until: str
) -> None:
    """Page the last paged step again, with notification keys of their own, and go on."""
    frozen = incident.escalation_snapshot
    step = incident.escalation_step - 1
    plan = engine.plan_step(frozen, step) if frozen else None
    if plan is None:
        return

    service = await session.get(Service, incident.service_id)
    assert service is not None  # incidents are deleted with their service
    targets = await oncall.resolve_targets(session, plan.targets)
    people = await oncall.responders(session, targets.user_ids)
    specs = []
    for person in people:
        for method in person.contact_methods:
            message = paging.build_message(
                context.settings,
                incident=incident,
                service=service,
                event="incident.triggered",
                recipient={"user_id": str(person.user.id), "name": person.user.name},
                idempotency_key=f"{incident.id}:incident.triggered:{step}:{method.id}:{until}",
                escalation_step=step,
            )
            specs.append(
                delivery.NotificationSpec(
                    incident_id=incident.id,
                    user_id=person.user.id,
                    contact_method_id=method.id,
                    notifier=method.kind,
                    event="incident.triggered",
                    escalation_step=step,
                    message=message,
                )
            )

    connection = await raw_connection(session)
    await delivery.create_notifications(connection, specs)

    names = ", ".join(person.user.name for person in people if person.contact_methods)
    await insert_timeline(
        connection,
        [
            (
                incident.id,
                "escalation.paged",
                f"Paged level {plan.level_index + 1} again after the snooze: {names or 'nobody'}",
                {"step": step, "users": [str(p.user.id) for p in people if p.contact_methods]},
            )
        ],
        actor=paging.SYSTEM_ACTOR,
        now=utcnow(),
    )
    if plan.next_step_delay is not None:
        await enqueue(
            connection,
            [_step_job(incident.id, incident.escalation_step, plan.next_step_delay, until)],
        )
