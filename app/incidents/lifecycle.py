"""Lifecycle jobs: acknowledgement timeout, end of a snooze, flapping settle, periodic sweep.

Each handler re-reads the incident under a row lock and acts only if the state it was
scheduled for still holds, so a late or repeated job changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from app.core.db import raw_connection
from app.core.logging import get_logger
from app.core.time import utcnow
from app.incidents.models import Alert, AlertStatus, Incident, IncidentStatus
from app.incidents.paging import SYSTEM_ACTOR, PagingContext
from app.incidents.repository import insert_timeline, resolved_job
from app.incidents.service import restart_escalation
from app.jobs.queue import INCIDENTS_SWEEP, Job, enqueue

log = get_logger(__name__)

SWEEP_INTERVAL_SECONDS = 30
# Incidents handled per sweep and kind; the next sweep continues with the rest.
SWEEP_BATCH = 500


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


async def acknowledge_timeout(
    context: PagingContext, incident_id: uuid.UUID, acknowledged_at: str
) -> None:
    async with context.sessionmaker() as session, session.begin():
        incident = await session.get(Incident, incident_id, with_for_update=True)
        if (
            incident is None
            or incident.status != IncidentStatus.acknowledged
            or incident.snoozed_until is not None
            or incident.acknowledged_at is None
            or incident.acknowledged_at != _parse(acknowledged_at)
        ):
            return
        await restart_escalation(
            session,
            incident,
            kind="incident.acknowledgement_timed_out",
            message="The acknowledgement timed out without a resolve; escalation starts over",
            now=utcnow(),
        )
        log.info("incident.acknowledgement_timed_out", incident_id=str(incident_id))


async def snooze_ended(context: PagingContext, incident_id: uuid.UUID, until: str) -> None:
    async with context.sessionmaker() as session, session.begin():
        incident = await session.get(Incident, incident_id, with_for_update=True)
        if (
            incident is None
            or incident.status != IncidentStatus.acknowledged
            or incident.snoozed_until is None
            or incident.snoozed_until != _parse(until)
        ):
            return
        await restart_escalation(
            session,
            incident,
            kind="incident.snooze_ended",
            message="The snooze ended; the incident is triggered again",
            now=utcnow(),
        )


async def settle(context: PagingContext, incident_id: uuid.UUID, settle_seconds: int) -> None:
    """Resolve a flapping incident whose alerts have all stayed resolved for the settle time."""
    async with context.sessionmaker() as session, session.begin():
        incident = await session.get(Incident, incident_id, with_for_update=True)
        if incident is None or incident.status not in (
            IncidentStatus.triggered,
            IncidentStatus.acknowledged,
        ):
            return
        firing = await session.scalar(
            select(func.count()).where(
                Alert.incident_id == incident_id, Alert.status == AlertStatus.firing
            )
        )
        last_resolved = await session.scalar(
            select(func.max(Alert.resolved_at)).where(Alert.incident_id == incident_id)
        )
        now = utcnow()
        if firing or (
            last_resolved is not None
            and now - last_resolved < timedelta(seconds=settle_seconds) - timedelta(seconds=1)
        ):
            return
        incident.status = IncidentStatus.resolved
        incident.resolved_at = now
        incident.resolved_by = SYSTEM_ACTOR
        incident.updated_at = now
        await session.flush()
        connection = await raw_connection(session)
        await insert_timeline(
            connection,
            [
                (
                    incident.id,
                    "incident.resolved",
                    f"Resolved: the flapping alert stayed resolved for {settle_seconds} s",
                    {},
                )
            ],
            actor=SYSTEM_ACTOR,
            now=now,
        )
        await enqueue(connection, [resolved_job(incident.id)])


def sweep_job(now: datetime) -> Job:
    """Build the next periodic sweep job; its dedupe key allows one per interval."""
    slot = int(now.timestamp()) // SWEEP_INTERVAL_SECONDS + 1
    due = datetime.fromtimestamp(slot * SWEEP_INTERVAL_SECONDS, UTC)
    return Job(
        INCIDENTS_SWEEP,
        {},
        delay=max(due - now, timedelta(0)),
        dedupe_key=f"{INCIDENTS_SWEEP}:{slot}",
    )


async def sweep(context: PagingContext) -> None:
    """Auto-resolve quiet incidents and close old resolved ones, then schedule the next sweep."""
    async with context.sessionmaker() as session, session.begin():
        await enqueue(await raw_connection(session), [sweep_job(utcnow())])
    await _auto_resolve(context)
    await _close_old(context)


async def _auto_resolve(context: PagingContext) -> None:
    async with context.sessionmaker() as session, session.begin():
        now = utcnow()
        connection = await raw_connection(session)
        rows = await connection.fetch(
            """
            SELECT i.id, s.auto_resolve_seconds FROM incidents i
            JOIN services s ON s.id = i.service_id
            WHERE s.auto_resolve_seconds IS NOT NULL
              AND i.status IN ('triggered', 'acknowledged')
              AND i.created_at < $1::timestamptz - make_interval(secs => s.auto_resolve_seconds)
              AND NOT EXISTS (
                  SELECT 1 FROM alerts a WHERE a.incident_id = i.id AND a.last_seen_at
                    >= $1::timestamptz - make_interval(secs => s.auto_resolve_seconds)
              )
            ORDER BY i.id
            LIMIT $2
            FOR UPDATE OF i SKIP LOCKED
            """,
            now,
            SWEEP_BATCH,
        )
        if not rows:
            return
        ids = [row["id"] for row in rows]
        await session.execute(
            update(Alert)
            .where(Alert.incident_id.in_(ids), Alert.status == AlertStatus.firing)
            .values(status=AlertStatus.resolved, resolved_at=now, updated_at=now)
        )
        await session.execute(
            update(Incident)
            .where(Incident.id.in_(ids))
            .values(
                status=IncidentStatus.resolved,
                resolved_at=now,
                resolved_by=SYSTEM_ACTOR,
                snoozed_until=None,
                updated_at=now,
            )
        )
        await insert_timeline(
            connection,
            [
                (
                    row["id"],
                    "incident.resolved",
                    f"Auto-resolved after {row['auto_resolve_seconds']} s without events",
                    {},
                )
                for row in rows
            ],
            actor=SYSTEM_ACTOR,
            now=now,
        )
        await enqueue(connection, [resolved_job(incident_id) for incident_id in ids])
        log.info("incidents.auto_resolved", count=len(ids))


async def _close_old(context: PagingContext) -> None:
    async with context.sessionmaker() as session, session.begin():
        now = utcnow()
        connection = await raw_connection(session)
        rows = await connection.fetch(
            """
            UPDATE incidents SET status = 'closed', closed_at = $1, updated_at = $1
            WHERE id IN (
                SELECT i.id FROM incidents i JOIN services s ON s.id = i.service_id
                WHERE s.close_after_seconds IS NOT NULL AND i.status = 'resolved'
                  AND i.resolved_at < $1::timestamptz - make_interval(secs => s.close_after_seconds)
                ORDER BY i.id LIMIT $2 FOR UPDATE OF i SKIP LOCKED
            )
            RETURNING id
            """,
            now,
            SWEEP_BATCH,
        )
        await insert_timeline(
            connection,
            [
                (row["id"], "incident.closed", "Closed by the service's retention setting", {})
                for row in rows
            ],
            actor=SYSTEM_ACTOR,
            now=now,
        )
