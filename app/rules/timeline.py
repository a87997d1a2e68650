"""Timeline entries written by rules, maintenance windows and silences, and their jobs.

The incidents domain imports this package, so the shared helpers come from
``app.core.timeline`` and ``app.jobs.queue`` instead of from it.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from app.core.timeline import insert_timeline
from app.jobs.queue import Job, escalation_job

RULES_ACTOR: dict[str, Any] = {"type": "rule", "id": None, "name": "Rules"}
SYSTEM_ACTOR: dict[str, Any] = {"type": "system", "id": None, "name": "Tocsin"}

TimelineEntry = tuple[uuid.UUID, str, str, dict[str, Any]]


def from_json(value: Any) -> Any:
    """Decode a json or jsonb column: text on a plain asyncpg connection, already decoded
    on one from SQLAlchemy's pool, which installs JSON codecs."""
    return json.loads(value) if isinstance(value, str) else value


# The shared insert, under the name this package has always used.
append_timeline = insert_timeline


def escalation_step_job(
    incident_id: uuid.UUID,
    step: int,
    *,
    epoch: int = 0,
    delay: timedelta | None = None,
    reason: str = "",
) -> Job:
    """Build a job for the escalation.step handler, which re-checks state before it pages."""
    return escalation_job(incident_id, step, epoch, delay, reason=reason)
