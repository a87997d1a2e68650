"""Manual escalation: escalate an incident to a level, reassign it to a user.

Both are actions on an open incident. An acknowledged incident goes back to triggered,
because someone is asking for more help. The pending automatic step and the pending
notification-rule steps of users paged before are cancelled. The new page is a durable
job committed with the action.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection
from app.core.errors import Conflict, Unprocessable
from app.core.logging import get_logger
from app.core.time import utcnow
from app.escalation import dispatch, engine
from app.escalation import service as escalation_service
from app.incidents.models import OPEN_STATUSES, Incident, IncidentStatus
from app.incidents.paging import SYSTEM_ACTOR, PagingContext, _message_factory
from app.incidents.repository import escalation_job, insert_timeline
from app.incidents.service import actor_data, describe, get_incident
from app.jobs.queue import ESCALATION_STEP, INCIDENT_REASSIGNED, Job, cancel_queued, enqueue
from app.oncall import notification_rules
from app.oncall.models import User
from app.services.models import Service

log = get_logger(__name__)

Entry = tuple[uuid.UUID, str, str, dict[str, Any]]


async def _open_incident(session: AsyncSession, incident_id: uuid.UUID, action: str) -> Incident:
    incident = await get_incident(session, incident_id, lock=True)
    if incident.status not in OPEN_STATUSES:
        raise Conflict(
            f"Incident {incident_id} is {incident.status}; only a triggered or acknowledged "
            f"incident can be {action}.",
            field="status",
        )
    return incident


async def ensure_snapshot(session: AsyncSession, incident: Incident) -> dict[str, Any] | None:
    """Freeze the policy now if the first escalation step has not run yet."""
    if incident.escalation_snapshot is None:
        service = await session.get(Service, incident.service_id)
        policy_id = incident.escalation_policy_id
        if policy_id is None and service is not None:
            policy_id = service.escalation_policy_id
        incident.escalation_snapshot = await escalation_service.load_snapshot(session, policy_id)
    return incident.escalation_snapshot


async def _cancel_pending_pages(connection: asyncpg.Connection, incident_id: uuid.UUID) -> int:
    """Cancel the incident's queued automatic step and its users' rule steps.

    Their handlers would find them stale anyway (the step number moved on); cancelling
    keeps the queue honest. Returns how many rule steps were cancelled.
    """
    await cancel_queued(connection, f"{ESCALATION_STEP}:{incident_id}:")
    return await cancel_queued(connection, dispatch.rule_step_dedupe_prefix(incident_id))


def _retrigger(incident: Incident, actor: dict[str, Any], reason: str) -> list[Entry]:
    if incident.status != IncidentStatus.acknowledged:
        return []
    incident.status = IncidentStatus.triggered
    incident.acknowledged_at = None
    incident.acknowledged_by = None
    return [
        (
            incident.id,
            "incident.retriggered",
            f"Triggered again by {describe(actor)}: {reason}",
            {},
        )
    ]


async def escalate(
    session: AsyncSession, incident_id: uuid.UUID, *, level: int, actor: dict[str, Any]
) -> Incident:
    """Page level ``level`` (1 is the first) of the incident's policy now.

    Escalation then goes on from that level with the policy's delays, in the same cycle
    of repeats. Raises 409 when the incident is closed or has no policy, 422 when the
    level does not exist.
    """
    incident = await _open_incident(session, incident_id, "escalated")
    frozen = await ensure_snapshot(session, incident)
    if frozen is None or not frozen["levels"]:
        raise Conflict(
            f"Incident {incident_id} has no escalation policy; reassign it to a user instead.",
        )
    count = len(frozen["levels"])
    if not 1 <= level <= count:
        raise Unprocessable(
            f"Escalation policy '{frozen['name']}' (version {frozen['version']}) has {count} "
            f"levels; pick a level from 1 to {count}.",
            field="level",
        )

    now = utcnow()
    entries = _retrigger(incident, actor, f"escalated to level {level}")
    step = incident.escalation_step + 1
    incident.escalation_step = step
    incident.escalation_position = engine.position_for_level(
        frozen, level - 1, incident.escalation_position
    )
    incident.updated_at = now
    await session.flush()

    connection = await raw_connection(session)
    cancelled = await _cancel_pending_pages(connection, incident.id)
    await enqueue(connection, [escalation_job(incident.id, step, incident.escalation_epoch)])
    entries.append(
        (
            incident.id,
            "escalation.manual",
            f"Escalated to level {level} by {describe(actor)}",
            {"level": level, "step": step, "cancelled_rule_steps": cancelled, **actor_data(actor)},
        )
    )
    await insert_timeline(connection, entries, actor=actor, now=now)
    log.info("incident.escalated", incident_id=str(incident.id), level=level, by=describe(actor))
    return incident


def reassign_job(incident_id: uuid.UUID, user_id: uuid.UUID, step: int) -> Job:
    return Job(
        INCIDENT_REASSIGNED,
        {"incident_id": incident_id, "user_id": user_id, "step": step},
        dedupe_key=f"{INCIDENT_REASSIGNED}:{incident_id}:{step}",
    )


async def reassign(
    session: AsyncSession, incident_id: uuid.UUID, *, user_id: uuid.UUID, actor: dict[str, Any]
) -> Incident:
    """Page ``user_id`` now, by their notification rules, in place of those paged so far.

    The policy keeps running behind the user: its next level is paged after the current
    level's delay, counted from now, unless someone acknowledges first.
    """
    incident = await _open_incident(session, incident_id, "reassigned")
    user = await session.scalar(select(User).where(User.id == user_id))
    if user is None:
        raise Unprocessable(f"User {user_id} does not exist.", field="user_id")

    now = utcnow()
    entries = _retrigger(incident, actor, f"reassigned to {user.name}")
    # One step number for the page of the user, the next for the policy's next level.
    step = incident.escalation_step + 1
    incident.escalation_step = step + 1
    incident.updated_at = now
    await session.flush()

    connection = await raw_connection(session)
    cancelled = await _cancel_pending_pages(connection, incident.id)
    jobs = [reassign_job(incident.id, user.id, step)]
    frozen = await ensure_snapshot(session, incident)
    # The level last paged sets how long the user has before the policy moves on; before
    # any level was paged, the first level's delay does.
    delay = None
    if frozen is not None:
        delay = engine.level_delay(frozen, max(incident.escalation_position - 1, 0))
    if delay is not None:
        jobs.append(escalation_job(incident.id, step + 1, incident.escalation_epoch, delay))
    await enqueue(connection, jobs)
    entries.append(
        (
            incident.id,
            "incident.reassigned",
            f"Reassigned to {user.name} by {describe(actor)}",
            {
                "user_id": str(user.id),
                "step": step,
                "cancelled_rule_steps": cancelled,
                **actor_data(actor),
            },
        )
    )
    await insert_timeline(connection, entries, actor=actor, now=now)
    log.info("incident.reassigned", incident_id=str(incident.id), user_id=str(user.id))
    return incident


async def run_reassign_page(context: PagingContext, payload: dict[str, Any]) -> None:
    """Page the user an incident was reassigned to, if it is still triggered."""
    incident_id = uuid.UUID(payload["incident_id"])
    step = int(payload["step"])
    async with context.sessionmaker() as session, session.begin():
        incident = await session.scalar(
            select(Incident).where(Incident.id == incident_id).with_for_update()
        )
        if incident is None or incident.status != IncidentStatus.triggered:
            log.info("reassign.skipped", incident_id=str(incident_id), reason="not triggered")
            return
        service = await session.get(Service, incident.service_id)
        assert service is not None
        plans = await notification_rules.plan_users(
            session,
            [uuid.UUID(payload["user_id"])],
            urgency=incident.urgency,
            reachability=dispatch.reachability_of(context.notifiers),
        )
        connection = await raw_connection(session)
        reachable = [plan for plan in plans if plan.reachable]
        await dispatch.page_users(
            connection,
            reachable,
            incident_id=incident.id,
            step=step,
            key_prefix=f"{incident.id}:incident.reassigned:{step}",
            message_for=_message_factory(context, incident, service),
        )
        if reachable:
            entry: Entry = (
                incident.id,
                "escalation.paged",
                f"Paged {dispatch.describe(reachable[0])} after reassignment",
                {"step": step, "users": [str(reachable[0].user.id)]},
            )
        else:
            name = plans[0].user.name if plans else payload["user_id"]
            entry = (
                incident.id,
                "escalation.user_unreachable",
                f"Cannot page {name} after reassignment: no usable contact method",
                {"step": step, "user_id": payload["user_id"]},
            )
        await insert_timeline(connection, [entry], actor=SYSTEM_ACTOR, now=utcnow())
