"""Write events that do not go through the alert hot path (notes, change events) to the log.

``app.incidents.ingest`` writes trigger, acknowledge and resolve events in bulk. This
module adds single rows to the same table, so an integration's event log is complete.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from app.core.ids import uuid7
from app.incidents.ingest import IntegrationContext


async def insert_event(
    connection: asyncpg.Connection,
    context: IntegrationContext,
    *,
    action: str,
    dedup_key: str,
    outcome: str,
    summary: str,
    payload: dict[str, Any],
    now: datetime,
    alert_id: uuid.UUID | None = None,
    incident_id: uuid.UUID | None = None,
) -> uuid.UUID:
    event_id = uuid7()
    await connection.execute(
        """
        INSERT INTO events (
            id, integration_id, service_id, received_at, action, dedup_key, outcome,
            alert_id, incident_id, summary, payload
        ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)
        """,
        event_id,
        context.integration_id,
        context.service_id,
        now,
        action,
        dedup_key,
        outcome,
        alert_id,
        incident_id,
        summary,
        json.dumps(payload, ensure_ascii=False, default=str),
    )
    await connection.execute(
        "UPDATE integrations SET last_event_at = $2 WHERE id = $1", context.integration_id, now
    )
    return event_id
