"""Incident queries and the actions responders and integrators take.

State machine: triggered -> acknowledged -> resolved -> closed. Acknowledge and resolve
change nothing on an incident already in that state. Any other move that the state does
not allow raises Conflict (409) naming the current state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.logging import get_logger
from app.core.time import isoformat, utcnow
from app.incidents.models import (
    Alert,
    AlertStatus,
    Incident,
    IncidentStatus,
    IncidentSubscriber,
    Postmortem,
    TimelineEntry,
)
from app.incidents.repository import (
    TimelineRow,
    acknowledgement_jobs,
    escalation_job,
    insert_timeline,
    resolved_job,
)
from app.jobs.queue import SNOOZE_ENDED, Job, enqueue
from app.oncall.models import User
from app.services.models import Service

log = get_logger(__name__)

# The detail view embeds this many alerts and timeline entries.
DETAIL_ITEMS = 500
OPEN = (IncidentStatus.triggered, IncidentStatus.acknowledged)


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    statuses: tuple[str, ...] = ()
    service_id: uuid.UUID | None = None
    number: int | None = None


def incidents_query(filters: IncidentFilter) -> Select[Incident]:
    statement = select(Incident)
    if filters.statuses:
        statement = statement.where(Incident.status.in_(filters.statuses))
    if filters.service_id is not None:
        statement = statement.where(Incident.service_id == filters.service_id)
    if filters.number is not None:
        statement = statement.where(Incident.number == filters.number)
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


def describe(actor: dict[str, Any]) -> str:
    name = str(actor.get("name") or actor.get("type"))
    return f"{name} via {actor['channel']}" if actor.get("channel") else name


def actor_data(actor: dict[str, Any]) -> dict[str, Any]:
    """Timeline data for an actor: the channel (link, slack, sms, web) an action came from."""
    return {"channel": actor["channel"]} if actor.get("channel") else {}


async def _timeline(
    session: AsyncSession, entries: list[TimelineRow], actor: dict[str, Any], now: datetime
) -> None:
    await session.flush()
    await insert_timeline(await raw_connection(session), entries, actor=actor, now=now)


async def lock_alerts(
    session: AsyncSession, incident_ids: list[uuid.UUID], *, firing_only: bool
) -> None:
    """Lock the alerts of ``incident_ids``. Call it before locking the incidents themselves.

    Ingest locks an alert row first and its incident second, and its trigger path takes
    alerts in dedup key order. Taking the locks in that same order keeps the two from
    deadlocking.
    """
    statement = (
        select(Alert.id)
        .where(Alert.incident_id.in_(incident_ids))
        .order_by(Alert.service_id, Alert.dedup_key, Alert.id)
        .with_for_update()
    )
    if firing_only:
        statement = statement.where(Alert.status == AlertStatus.firing)
    await session.execute(statement)


def _conflict(incident: Incident, action: str, allowed: str) -> Conflict:
    return Conflict(
        f"Incident {incident.id} is {incident.status}; only {allowed} incidents can be {action}.",
        field="status",
    )


async def acknowledge(
    session: AsyncSession, incident_id: uuid.UUID, *, actor: dict[str, Any]
) -> Incident:
    """Acknowledge a triggered incident, which stops its escalation and pending pages."""
    incident = await get_incident(session, incident_id, lock=True)
    if incident.status == IncidentStatus.acknowledged and incident.snoozed_until is None:
        return incident
    if incident.status not in OPEN:
        raise _conflict(incident, "acknowledged", "triggered")
    now = utcnow()
    incident.status = IncidentStatus.acknowledged
    incident.acknowledged_at = now
    incident.acknowledged_by = actor
    incident.snoozed_until = None
    incident.updated_at = now
    await _timeline(
        session,
        [
            (
                incident.id,
                "incident.acknowledged",
                f"Acknowledged by {describe(actor)}",
                actor_data(actor),
            )
        ],
        actor,
        now,
    )
    await enqueue(await raw_connection(session), await acknowledged_jobs(session, incident, now))
    log.info("incident.acknowledged", incident_id=str(incident.id), by=describe(actor))
    return incident


async def acknowledged_jobs(session: AsyncSession, incident: Incident, now: datetime) -> list[Job]:
    timeout = await session.scalar(
        select(Service.acknowledge_timeout_seconds).where(Service.id == incident.service_id)
    )
    return acknowledgement_jobs(incident.id, now, timeout)


async def resolve(
    session: AsyncSession, incident_id: uuid.UUID, *, actor: dict[str, Any]
) -> Incident:
    """Resolve an open incident and its firing alerts; a later trigger opens a new incident."""
    await lock_alerts(session, [incident_id], firing_only=True)
    incident = await get_incident(session, incident_id, lock=True)
    if incident.status in (IncidentStatus.resolved, IncidentStatus.closed):
        return incident
    now = utcnow()
    _mark_resolved(incident, actor, now)
    await session.execute(
        update(Alert)
        .where(Alert.incident_id == incident.id, Alert.status == AlertStatus.firing)
        .values(status=AlertStatus.resolved, resolved_at=now, updated_at=now)
    )
    await _timeline(
        session,
        [(incident.id, "incident.resolved", f"Resolved by {describe(actor)}", actor_data(actor))],
        actor,
        now,
    )
    await enqueue(await raw_connection(session), [resolved_job(incident.id)])
    log.info("incident.resolved", incident_id=str(incident.id), by=describe(actor))
    return incident


def _mark_resolved(incident: Incident, actor: dict[str, Any], now: datetime) -> None:
    incident.status = IncidentStatus.resolved
    incident.resolved_at = now
    incident.resolved_by = actor
    incident.snoozed_until = None
    incident.updated_at = now


async def snooze(
    session: AsyncSession, incident_id: uuid.UUID, *, until: datetime, actor: dict[str, Any]
) -> Incident:
    """Silence an open incident until ``until``; then it triggers again and escalates anew."""
    now = utcnow()
    if until <= now:
        raise Unprocessable("The snooze must end in the future.", field="until")
    if until > now + timedelta(days=7):
        raise Unprocessable("A snooze can last at most 7 days.", field="until")

    incident = await get_incident(session, incident_id, lock=True)
    if incident.status not in OPEN:
        raise _conflict(incident, "snoozed", "triggered or acknowledged")
    incident.status = IncidentStatus.acknowledged
    incident.acknowledged_at = incident.acknowledged_at or now
    incident.acknowledged_by = incident.acknowledged_by or actor
    incident.snoozed_until = until
    incident.updated_at = now

    await _timeline(
        session,
        [
            (
                incident.id,
                "incident.snoozed",
                f"Snoozed by {describe(actor)} until {isoformat(until)}",
                {"until": isoformat(until)},
            )
        ],
        actor,
        now,
    )

    await enqueue(
        await raw_connection(session),
        [
            Job(
                SNOOZE_ENDED,
                {"incident_id": incident.id, "until": isoformat(until)},
                delay=until - now,
                dedupe_key=f"{SNOOZE_ENDED}:{incident.id}:{until.timestamp()}",
            )
        ],
    )
    return incident


async def restart_escalation(
    session: AsyncSession, incident: Incident, *, kind: str, message: str, now: datetime
) -> None:
    """Put an acknowledged incident back to triggered and page from the first level again."""
    incident.status = IncidentStatus.triggered
    incident.acknowledged_at = None
    incident.acknowledged_by = None
    incident.snoozed_until = None
    incident.escalation_step = 0
    incident.escalation_position = 0
    incident.escalation_epoch += 1
    incident.updated_at = now
    system = {"type": "system", "id": None, "name": "Tocsin"}
    await _timeline(session, [(incident.id, kind, message, {})], system, now)
    await enqueue(
        await raw_connection(session),
        [escalation_job(incident.id, 0, incident.escalation_epoch)],
    )


PRIORITIES = ("P1", "P2", "P3", "P4", "P5")


async def update_incident(
    session: AsyncSession,
    incident_id: uuid.UUID,
    *,
    changes: dict[str, Any],
    actor: dict[str, Any],
) -> Incident:
    """Change title, priority or urgency; each change goes into the timeline."""
    incident = await get_incident(session, incident_id, lock=True)
    if incident.status == IncidentStatus.closed:
        raise _conflict(incident, "changed", "open or resolved")
    now = utcnow()
    entries: list[TimelineRow] = []
    for name, value in changes.items():
        old = getattr(incident, name)
        if value == old:
            continue
        setattr(incident, name, value)
        entries.append(
            (
                incident.id,
                f"incident.{name}_changed",
                f"{name.capitalize()} changed from {old} to {value} by {describe(actor)}",
                {"from": old, "to": value},
            )
        )
    if entries:
        incident.updated_at = now
        await _timeline(session, entries, actor, now)
    return incident


async def add_note(
    session: AsyncSession, incident_id: uuid.UUID, *, text: str, actor: dict[str, Any]
) -> TimelineEntry:
    incident = await get_incident(session, incident_id)
    now = utcnow()
    entry = TimelineEntry(
        incident_id=incident.id,
        at=now,
        kind="note.added",
        actor_type=actor["type"],
        actor_id=uuid.UUID(actor["id"]) if actor.get("id") else None,
        actor_name=actor.get("name", ""),
        message=text,
        data={},
    )
    session.add(entry)
    await session.flush()
    return entry


async def merge(
    session: AsyncSession,
    target_id: uuid.UUID,
    *,
    source_ids: list[uuid.UUID],
    actor: dict[str, Any],
) -> Incident:
    """Move the alerts of ``source_ids`` into the target; the sources resolve as merged."""
    if target_id in source_ids:
        raise Unprocessable("An incident cannot be merged into itself.", field="incident_ids")
    ids = sorted({target_id, *source_ids})
    await lock_alerts(session, source_ids, firing_only=False)
    rows = (
        await session.scalars(
            select(Incident)
            .where(Incident.id.in_(ids))
            .order_by(Incident.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).all()
    by_id = {incident.id: incident for incident in rows}
    missing = [str(incident_id) for incident_id in ids if incident_id not in by_id]
    if missing:
        raise NotFound(f"Incident {missing[0]} does not exist.", field="incident_ids")

    target = by_id[target_id]
    if target.status not in OPEN:
        raise _conflict(target, "merge targets", "triggered or acknowledged")

    now = utcnow()
    entries: list[TimelineRow] = []
    for source_id in dict.fromkeys(source_ids):
        source = by_id[source_id]
        if source.merged_into_id is not None:
            raise Conflict(
                f"Incident #{source.number} was already merged into incident "
                f"{source.merged_into_id}; merge that one instead.",
                field="incident_ids",
            )
        if source.status == IncidentStatus.closed:
            raise _conflict(source, "merged", "open or resolved")
        moved = await session.scalars(
            update(Alert)
            .where(Alert.incident_id == source.id)
            .values(incident_id=target.id)
            .returning(Alert.id)
        )
        count = len(moved.all())
        target.alert_count += count
        source.alert_count = 0
        source.merged_into_id = target.id
        source.accepts_alerts = False
        if source.status in OPEN:
            _mark_resolved(source, actor, now)
        entries.append(
            (
                target.id,
                "incident.merged",
                f"Incident #{source.number} merged into this one by {describe(actor)} "
                f"({count} alerts)",
                {"incident_id": str(source.id), "alerts": count},
            )
        )
        entries.append(
            (
                source.id,
                "incident.merged_into",
                f"Merged into incident #{target.number} by {describe(actor)}",
                {"incident_id": str(target.id)},
            )
        )
    target.updated_at = now

    await _timeline(session, entries, actor, now)
    return target


async def subscribe(
    session: AsyncSession, incident_id: uuid.UUID, *, user_id: uuid.UUID, actor: dict[str, Any]
) -> None:
    incident = await get_incident(session, incident_id)
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.", field="user_id")
    result = await session.execute(
        insert(IncidentSubscriber)
        .values(incident_id=incident.id, user_id=user.id)
        .on_conflict_do_nothing()
        .returning(IncidentSubscriber.user_id)
    )
    if result.first() is not None:
        await _timeline(
            session,
            [
                (
                    incident.id,
                    "incident.subscribed",
                    f"{user.name} subscribed by {describe(actor)}",
                    {"user_id": str(user.id)},
                )
            ],
            actor,
            utcnow(),
        )


async def unsubscribe(session: AsyncSession, incident_id: uuid.UUID, *, user_id: uuid.UUID) -> None:
    await get_incident(session, incident_id)
    await session.execute(
        delete(IncidentSubscriber).where(
            IncidentSubscriber.incident_id == incident_id, IncidentSubscriber.user_id == user_id
        )
    )


async def list_subscribers(session: AsyncSession, incident_id: uuid.UUID) -> list[User]:
    await get_incident(session, incident_id)
    statement = (
        select(User)
        .join(IncidentSubscriber, IncidentSubscriber.user_id == User.id)
        .where(IncidentSubscriber.incident_id == incident_id)
        .order_by(IncidentSubscriber.created_at)
    )
    return list((await session.scalars(statement)).all())


async def save_postmortem(
    session: AsyncSession,
    incident_id: uuid.UUID,
    *,
    values: dict[str, Any],
    actor: dict[str, Any],
) -> Postmortem:
    """Record or replace the postmortem of a resolved incident, which closes the incident."""

    incident = await get_incident(session, incident_id, lock=True)
    if incident.status not in (IncidentStatus.resolved, IncidentStatus.closed):
        raise _conflict(incident, "given a postmortem", "resolved or closed")
    entry_ids = [str(entry_id) for entry_id in values.get("timeline_entry_ids", [])]
    if entry_ids:
        found = set(
            (
                await session.scalars(
                    select(TimelineEntry.id).where(
                        TimelineEntry.incident_id == incident.id,
                        TimelineEntry.id.in_([uuid.UUID(e) for e in entry_ids]),
                    )
                )
            ).all()
        )
        for index, entry_id in enumerate(entry_ids):
            if uuid.UUID(entry_id) not in found:
                raise Unprocessable(
                    f"Timeline entry {entry_id} is not part of incident {incident.id}.",
                    field=f"timeline_entry_ids.{index}",
                )

    now = utcnow()
    postmortem = await session.scalar(
        select(Postmortem).where(Postmortem.incident_id == incident.id)
    )
    created = postmortem is None
    if postmortem is None:
        postmortem = Postmortem(incident_id=incident.id, author=actor)
        session.add(postmortem)
    for name in ("summary", "impact", "root_cause", "lessons_learned", "action_items"):
        if name in values:
            setattr(postmortem, name, values[name])
    postmortem.timeline_entry_ids = entry_ids
    entries: list[TimelineRow] = [
        (
            incident.id,
            "postmortem.recorded" if created else "postmortem.updated",
            f"Postmortem {'recorded' if created else 'updated'} by {describe(actor)}",
            {},
        )
    ]
    if incident.status != IncidentStatus.closed:
        incident.status = IncidentStatus.closed
        incident.closed_at = now
        incident.updated_at = now
        entries.append((incident.id, "incident.closed", "Closed with a postmortem", {}))

    await _timeline(session, entries, actor, now)
    return postmortem


async def _find_postmortem(session: AsyncSession, incident_id: uuid.UUID) -> Postmortem | None:
    return await session.scalar(select(Postmortem).where(Postmortem.incident_id == incident_id))


async def get_postmortem(session: AsyncSession, incident_id: uuid.UUID) -> Postmortem:
    await get_incident(session, incident_id)
    postmortem = await session.scalar(
        select(Postmortem).where(Postmortem.incident_id == incident_id)
    )
    if postmortem is None:
        raise NotFound(
            f"Incident {incident_id} has no postmortem yet; record one with "
            "PUT /v1/incidents/{id}/postmortem.",
            field="incident_id",
        )
    return postmortem


async def postmortem_excerpt(session: AsyncSession, postmortem: Postmortem) -> list[TimelineEntry]:
    """Return the entries a postmortem quotes, or the state changes when it quotes none."""
    statement = select(TimelineEntry).where(TimelineEntry.incident_id == postmortem.incident_id)
    if postmortem.timeline_entry_ids:
        statement = statement.where(
            TimelineEntry.id.in_([uuid.UUID(e) for e in postmortem.timeline_entry_ids])
        )
    else:
        statement = statement.where(
            func.split_part(TimelineEntry.kind, ".", 1).in_(("incident", "escalation"))
        )
    return list(
        (await session.scalars(statement.order_by(TimelineEntry.at, TimelineEntry.id))).all()
    )
