"""Append incident timeline entries: the one write that every domain makes.

Rules, maintenance windows, escalation and the incidents domain all record what they did
in ``timeline_entries``. The incidents domain imports the others, so the shared insert
lives here, below all of them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from app.core.ids import uuid7

# (incident_id, kind, message, data)
TimelineRow = tuple[uuid.UUID, str, str, dict[str, Any]]


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


async def insert_timeline(
    connection: asyncpg.Connection,
    entries: Sequence[TimelineRow],
    *,
    actor: dict[str, Any],
    now: datetime,
) -> None:
    """Append timeline entries ``(incident_id, kind, message, data)`` by one actor."""
    if not entries:
        return
    actor_id = uuid.UUID(str(actor["id"])) if actor.get("id") else None
    await connection.execute(
        """
        INSERT INTO timeline_entries (
            id, incident_id, at, kind, actor_type, actor_id, actor_name, message, data
        )
        SELECT id, incident_id, $1, kind, $2, $3, $4, message, data
        FROM unnest($5::uuid[], $6::uuid[], $7::text[], $8::text[], $9::jsonb[])
            AS t(id, incident_id, kind, message, data)
        """,
        now,
        actor["type"],
        actor_id,
        actor.get("name", ""),
        [uuid7() for _ in entries],
        [entry[0] for entry in entries],
        [entry[1] for entry in entries],
        [entry[2] for entry in entries],
        [to_json(entry[3]) for entry in entries],
    )
