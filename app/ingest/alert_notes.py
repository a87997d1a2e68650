"""Notes that senders add to an alert (Opsgenie's add-note), kept on the incident's timeline."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from app.incidents.ingest import IntegrationContext, actor_for_integration
from app.incidents.repository import insert_timeline
from app.ingest.event_log import insert_event
from app.ingest.parsers.opsgenie import Note


async def add_note(
    connection: asyncpg.Connection,
    context: IntegrationContext,
    *,
    dedup_key: str,
    note: Note,
    now: datetime,
) -> str:
    """Add ``note`` to the timeline of the alert's incident; return the outcome logged.

    The newest alert with the key wins, open or not, so a note about a just-closed
    alert still lands on its incident. Without any alert the note is only logged.
    """
    alert = await connection.fetchrow(
        """
        SELECT id, incident_id FROM alerts
        WHERE service_id = $1 AND dedup_key = $2
        ORDER BY (status = 'firing') DESC, created_at DESC
        LIMIT 1
        """,
        context.service_id,
        dedup_key,
    )
    outcome = "note.added" if alert is not None and alert["incident_id"] else "ignored.no_alert"
    if outcome == "note.added":
        author = note.user or note.source or context.integration_name
        await insert_timeline(
            connection,
            [
                (
                    alert["incident_id"],
                    "alert.note",
                    f"Note from {author}: {note.text}",
                    {"alert_id": str(alert["id"]), "dedup_key": dedup_key, "note": note.text},
                )
            ],
            actor=actor_for_integration(context),
            now=now,
        )
    await insert_event(
        connection,
        context,
        action="note",
        dedup_key=dedup_key,
        outcome=outcome,
        summary=note.text,
        payload={"note": note.text, "user": note.user, "source": note.source},
        now=now,
        alert_id=alert["id"] if alert is not None else None,
        incident_id=alert["incident_id"] if alert is not None else None,
    )
    return outcome


async def dedup_key_of_alert(
    connection: asyncpg.Connection, context: IntegrationContext, alert_id: str
) -> str | None:
    """Return the dedup key of the service's alert with this id, or None."""
    try:
        parsed_id = uuid.UUID(alert_id)
    except ValueError:
        return None
    value = await connection.fetchval(
        "SELECT dedup_key FROM alerts WHERE service_id = $1 AND id = $2",
        context.service_id,
        parsed_id,
    )
    return None if value is None else str(value)
