"""Heartbeats: record pings, and open an incident when a ping does not arrive in time.

Each heartbeat integration has at most one queued ``heartbeat.check`` job, due at the
deadline the latest ping set (``heartbeats.check_at``). A job that runs before a newer
deadline re-queues itself for that deadline. A job that runs at or after the deadline opens
an incident through the normal ingest path. A heartbeat that never pinged has no row and no
job, so it never alarms.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.core.db import raw_connection
from app.core.logging import get_logger
from app.core.time import isoformat, utcnow
from app.incidents.events import AlertEvent, Severity
from app.incidents.ingest import IngestResult, ingest_events
from app.incidents.paging import PagingContext
from app.ingest.integrations import ResolvedIntegration, load_integration
from app.ingest.parsers import heartbeat
from app.ingest.parsers.common import normalize_severity
from app.jobs.queue import HEARTBEAT_CHECK, Job, enqueue

log = get_logger(__name__)

DEFAULT_INTERVAL_SECONDS = 300


@dataclass(slots=True)
class PingResult:
    deadline_at: datetime
    resolved: IngestResult | None = None
    incidents_resolved: list[uuid.UUID] = field(default_factory=list)


def interval_of(settings: dict[str, Any]) -> timedelta:
    """Return the expected interval between pings plus the grace period, from settings."""
    interval = int(settings.get("interval_seconds") or DEFAULT_INTERVAL_SECONDS)
    grace = int(settings.get("grace_seconds") or 0)
    return timedelta(seconds=interval + grace)


def check_job(integration_id: uuid.UUID, due_at: datetime, now: datetime) -> Job:
    # The deadline is part of the dedupe key: a job re-queueing itself for a later deadline
    # must not collide with its own row, which pgqueuer keeps while the job runs.
    return Job(
        HEARTBEAT_CHECK,
        {"integration_id": integration_id},
        delay=max(due_at - now, timedelta(0)),
        dedupe_key=f"{HEARTBEAT_CHECK}:{integration_id}:{due_at.timestamp()}",
    )


async def record_ping(
    connection: asyncpg.Connection,
    integration: ResolvedIntegration,
    events: list[AlertEvent],
    now: datetime,
) -> PingResult:
    """Move the deadline, queue a check if none is due before it, and end a missed state."""
    context = integration.context
    deadline = now + interval_of(integration.settings)
    previous = await connection.fetchrow(
        "SELECT check_at, missed_at FROM heartbeats WHERE integration_id = $1 FOR UPDATE",
        context.integration_id,
    )
    check_at = None if previous is None else previous["check_at"]
    # A queued check due after now and no later than the new deadline re-queues itself.
    # Queue one when none is queued, the queued one is already due, or it is due too late
    # because the interval was shortened.
    needs_job = check_at is None or check_at <= now or check_at > deadline
    if needs_job:
        check_at = deadline
        await enqueue(connection, [check_job(context.integration_id, deadline, now)])
    await connection.execute(
        """
        INSERT INTO heartbeats (integration_id, last_ping_at, deadline_at, check_at, missed_at)
        VALUES ($1, $2, $3, $4, NULL)
        ON CONFLICT (integration_id) DO UPDATE SET
            last_ping_at = EXCLUDED.last_ping_at, deadline_at = EXCLUDED.deadline_at,
            check_at = EXCLUDED.check_at, missed_at = NULL
        """,
        context.integration_id,
        now,
        deadline,
        check_at,
    )

    result = PingResult(deadline_at=deadline)
    if previous is not None and previous["missed_at"] is not None:
        # Only a ping after a miss goes through ingest: logging every ping as an ignored
        # resolve would bury the event log of a heartbeat that pings each minute.
        result.resolved = await ingest_events(connection, context, events, now)
        result.incidents_resolved = result.resolved.incidents_resolved
        log.info("heartbeat.recovered", integration_id=str(context.integration_id))
    else:
        await connection.execute(
            "UPDATE integrations SET last_event_at = $2 WHERE id = $1", context.integration_id, now
        )
    return result


async def check_heartbeat(context: PagingContext, payload: dict[str, Any]) -> None:
    """Job handler: open an incident if the heartbeat's deadline passed without a ping."""
    integration_id = uuid.UUID(payload["integration_id"])
    async with context.sessionmaker() as session, session.begin():
        connection = await raw_connection(session)
        await run_check(connection, integration_id, utcnow())


async def run_check(
    connection: asyncpg.Connection, integration_id: uuid.UUID, now: datetime
) -> None:
    state = await connection.fetchrow(
        "SELECT last_ping_at, deadline_at, missed_at FROM heartbeats "
        "WHERE integration_id = $1 FOR UPDATE",
        integration_id,
    )
    integration = await load_integration(connection, integration_id)
    if state is None or integration is None or state["missed_at"] is not None:
        return
    if now < state["deadline_at"]:
        await enqueue(connection, [check_job(integration_id, state["deadline_at"], now)])
        await connection.execute(
            "UPDATE heartbeats SET check_at = $2 WHERE integration_id = $1",
            integration_id,
            state["deadline_at"],
        )
        return
    if not integration.enabled:
        # A disabled heartbeat does not alarm; its next ping after enabling re-arms it.
        await connection.execute(
            "UPDATE heartbeats SET check_at = NULL WHERE integration_id = $1", integration_id
        )
        return

    severity, _ = normalize_severity(
        integration.settings.get("severity"), "settings.severity", default=Severity.critical
    )
    event = heartbeat.missed(
        integration_name=integration.context.integration_name,
        last_ping_at=state["last_ping_at"],
        interval=interval_of(integration.settings),
        severity=severity,
    )
    result = await ingest_events(connection, integration.context, [event], now)
    await connection.execute(
        "UPDATE heartbeats SET missed_at = $2, check_at = NULL WHERE integration_id = $1",
        integration_id,
        now,
    )
    log.warning(
        "heartbeat.missed",
        integration_id=str(integration_id),
        last_ping_at=isoformat(state["last_ping_at"]),
        incidents_opened=[str(incident_id) for incident_id in result.incidents_opened],
    )
