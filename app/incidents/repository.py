"""Raw SQL shared by ingest, actions and jobs: row locks, state changes, the timeline."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.core.logging import get_logger
from app.core.timeline import TimelineRow, insert_timeline, to_json
from app.jobs.queue import (
    ACKNOWLEDGE_TIMEOUT,
    INCIDENT_ACKNOWLEDGED,
    INCIDENT_RESOLVED,
    Job,
    escalation_job,
)

log = get_logger(__name__)

OPEN = ("triggered", "acknowledged")


def resolved_job(incident_id: uuid.UUID) -> Job:
    return Job(
        INCIDENT_RESOLVED,
        {"incident_id": incident_id},
        dedupe_key=f"{INCIDENT_RESOLVED}:{incident_id}",
    )


__all__ = ["TimelineRow", "escalation_job", "insert_timeline", "to_json"]


def acknowledgement_jobs(
    incident_id: uuid.UUID, now: datetime, timeout_seconds: int | None
) -> list[Job]:
    """Jobs that follow an acknowledgement: tell subscribers, and the service's timeout."""
    jobs = [
        Job(
            INCIDENT_ACKNOWLEDGED,
            {"incident_id": incident_id},
            dedupe_key=f"{INCIDENT_ACKNOWLEDGED}:{incident_id}:{now.timestamp()}",
        )
    ]
    if timeout_seconds:
        jobs.append(
            Job(
                ACKNOWLEDGE_TIMEOUT,
                {"incident_id": incident_id, "acknowledged_at": now.isoformat()},
                delay=timedelta(seconds=timeout_seconds),
                dedupe_key=f"{ACKNOWLEDGE_TIMEOUT}:{incident_id}:{now.timestamp()}",
            )
        )
    return jobs


async def lock_incidents(
    connection: asyncpg.Connection, incident_ids: Iterable[uuid.UUID]
) -> list[asyncpg.Record]:
    """Lock incident rows in id order, so two transactions never wait on each other in a cycle."""
    ids = sorted(set(incident_ids))
    if not ids:
        return []
    return list(
        await connection.fetch(
            "SELECT id, status, number FROM incidents WHERE id = ANY($1::uuid[]) "
            "ORDER BY id FOR UPDATE",
            ids,
        )
    )


async def acknowledge_incidents(
    connection: asyncpg.Connection,
    incident_ids: Sequence[uuid.UUID],
    *,
    actor: dict[str, Any],
    now: datetime,
) -> dict[uuid.UUID, int | None]:
    """Acknowledge the triggered incidents among ``incident_ids``.

    Returns those changed, each with its service's acknowledgement timeout in seconds.
    """
    locked = await lock_incidents(connection, incident_ids)
    movable = [row["id"] for row in locked if row["status"] == "triggered"]
    if not movable:
        return {}
    rows = await connection.fetch(
        """
        UPDATE incidents SET status = 'acknowledged', acknowledged_at = $2,
               acknowledged_by = $3::jsonb, updated_at = $2
        FROM services
        WHERE incidents.id = ANY($1::uuid[]) AND services.id = incidents.service_id
        RETURNING incidents.id, services.acknowledge_timeout_seconds
        """,
        movable,
        now,
        to_json(actor),
    )
    timeouts = {row["id"]: row["acknowledge_timeout_seconds"] for row in rows}
    return {incident_id: timeouts[incident_id] for incident_id in movable}


async def resolve_incidents_without_firing_alerts(
    connection: asyncpg.Connection,
    incident_ids: Sequence[uuid.UUID],
    *,
    actor: dict[str, Any],
    now: datetime,
) -> set[uuid.UUID]:
    """Resolve the open incidents among ``incident_ids`` that have no firing alert left.

    The rows are locked first, in a statement of their own: under READ COMMITTED the
    next statement takes a new snapshot, so it sees an alert that a concurrent
    transaction attached while we waited for the lock.
    """
    locked = await lock_incidents(connection, incident_ids)
    open_ids = [row["id"] for row in locked if row["status"] in OPEN]
    if not open_ids:
        return set()
    rows = await connection.fetch(
        """
        UPDATE incidents SET status = 'resolved', resolved_at = $2, resolved_by = $3::jsonb,
               snoozed_until = NULL, updated_at = $2
        WHERE id = ANY($1::uuid[])
          AND NOT EXISTS (
              SELECT 1 FROM alerts WHERE alerts.incident_id = incidents.id
                AND alerts.status = 'firing'
          )
        RETURNING id
        """,
        open_ids,
        now,
        to_json(actor),
    )
    resolved = {row["id"] for row in rows}
    for incident_id in resolved:
        log.info("incident.resolved", incident_id=str(incident_id), by=actor.get("name"))
    return resolved
