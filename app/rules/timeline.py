"""Timeline entries written by rules, maintenance windows and silences, and their jobs.

The incidents domain imports this package, so these helpers write the shared tables
directly instead of importing back from it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.core.ids import uuid7
from app.jobs.queue import ESCALATION_STEP, Job

RULES_ACTOR: dict[str, Any] = {"type": "rule", "id": None, "name": "Rules"}
SYSTEM_ACTOR: dict[str, Any] = {"type": "system", "id": None, "name": "Tocsin"}

TimelineEntry = tuple[uuid.UUID, str, str, dict[str, Any]]


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def from_json(value: Any) -> Any:
    """Decode a json or jsonb column: text on a plain asyncpg connection, already decoded
    on one from SQLAlchemy's pool, which installs JSON codecs."""
    return json.loads(value) if isinstance(value, str) else value


async def append_timeline(
    connection: asyncpg.Connection,
    entries: Sequence[TimelineEntry],
    *,
    actor: dict[str, Any],
    now: datetime,
) -> None:
    """Append ``(incident_id, kind, message, data)`` entries, as the incidents domain does."""
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


def escalation_step_job(
    incident_id: uuid.UUID,
    step: int,
    *,
    epoch: int = 0,
    delay: timedelta | None = None,
    reason: str = "",
) -> Job:
    """A job for the escalation.step handler, which re-checks state before it pages.

    ``reason`` makes the dedupe key differ from the step's own job, which may still be
    running when a hold schedules its resumption.
    """
    key = f"{ESCALATION_STEP}:{incident_id}:{epoch}:{step}" + (f":{reason}" if reason else "")
    payload = {"incident_id": incident_id, "step": step, "epoch": epoch}
    return Job(ESCALATION_STEP, payload, delay=delay, dedupe_key=key)
