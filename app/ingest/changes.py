"""Store change events (deploys, configuration pushes) and list a service's recent changes."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import asyncpg

from app.core.ids import uuid7
from app.incidents.ingest import IntegrationContext
from app.ingest.event_log import insert_event
from app.ingest.parsers.pagerduty import ChangeEvent


async def record_change(
    connection: asyncpg.Connection,
    context: IntegrationContext,
    change: ChangeEvent,
    now: datetime,
) -> uuid.UUID:
    """Insert a change event and its row in the integration's event log; return its id."""
    change_id = uuid7()
    await connection.execute(
        """
        INSERT INTO change_events (
            id, service_id, integration_id, at, received_at, summary, source,
            custom_details, links, payload
        ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10::jsonb)
        """,
        change_id,
        context.service_id,
        context.integration_id,
        change.occurred_at or now,
        now,
        change.summary,
        change.source,
        _json(change.custom_details),
        _json([{"href": link.href, "text": link.text} for link in change.links]),
        _json(change.raw),
    )
    await insert_event(
        connection,
        context,
        action="change",
        dedup_key=str(change_id),
        outcome="change.recorded",
        summary=change.summary,
        payload=change.raw,
        now=now,
    )
    return change_id


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
