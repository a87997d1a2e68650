"""Enqueue durable jobs (pgqueuer) inside the caller's database transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import asyncpg
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries

INCIDENT_TRIGGERED = "incident.triggered"
INCIDENT_RESOLVED = "incident.resolved"
INCIDENT_ACKNOWLEDGED = "incident.acknowledged"
# Resolve a flapping incident once its alerts stayed resolved for the settle time.
INCIDENT_SETTLE = "incident.settle"
ACKNOWLEDGE_TIMEOUT = "incident.acknowledge_timeout"
SNOOZE_ENDED = "incident.snooze_ended"
# Periodic: auto-resolve quiet incidents and close old resolved ones.
INCIDENTS_SWEEP = "incidents.sweep"
ESCALATION_STEP = "escalation.step"
NOTIFICATION_DELIVER = "notification.deliver"
HEARTBEAT_CHECK = "heartbeat.check"
NOTIFICATION_DIGEST_JOB = "notification.digest"
NOTIFICATION_RULE_STEP = "notification.rule_step"
INCIDENT_REASSIGNED = "incident.reassigned"
CONTACT_METHOD_VERIFICATION = "contact_method.verification"


@dataclass(frozen=True, slots=True)
class Job:
    entrypoint: str
    payload: dict[str, Any] = field(default_factory=dict)
    delay: timedelta | None = None
    # A queued or running job with the same key makes this one a no-op.
    dedupe_key: str | None = None


def escalation_job(
    incident_id: uuid.UUID,
    step: int,
    epoch: int,
    delay: timedelta | None = None,
    *,
    reason: str = "",
) -> Job:
    """Build the job that runs escalation step ``step`` of escalation epoch ``epoch``.

    ``reason`` makes the dedupe key differ from the step's own job, for a second run of
    the step (a hold that ends) while the first may still be queued or running.
    """
    key = f"{ESCALATION_STEP}:{incident_id}:{epoch}:{step}" + (f":{reason}" if reason else "")
    payload = {"incident_id": incident_id, "step": step, "epoch": epoch}
    return Job(ESCALATION_STEP, payload, delay=delay, dedupe_key=key)


def _default(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a job payload")


async def enqueue(connection: asyncpg.Connection, jobs: Sequence[Job]) -> None:
    """Insert jobs on ``connection``: they become visible when its transaction commits.

    pgqueuer's insert trigger sends NOTIFY, which PostgreSQL delivers at commit, so a
    listening worker wakes as soon as the caller commits and never sees a rolled-back job.
    """
    if not jobs:
        return
    queries = Queries(AsyncpgDriver(connection))
    await queries.enqueue(
        [job.entrypoint for job in jobs],
        [json.dumps(job.payload, default=_default).encode() for job in jobs],
        [0] * len(jobs),
        [job.delay for job in jobs],
        [job.dedupe_key for job in jobs],
        on_conflict="skip",
    )


def decode_payload(payload: bytes | None) -> dict[str, Any]:
    if not payload:
        return {}
    value = json.loads(payload)
    if not isinstance(value, dict):
        raise ValueError("job payload must be a JSON object")
    return value


async def cancel_queued(connection: asyncpg.Connection, dedupe_key_prefix: str) -> int:
    """Cancel queued jobs whose dedupe key starts with ``dedupe_key_prefix``; return how many.

    Jobs already picked by a worker run to the end, so handlers still check state.
    """
    rows = await connection.fetch(
        """
        WITH cancelled AS (
            DELETE FROM pgqueuer
            WHERE status = 'queued' AND left(dedupe_key, length($1)) = $1
            RETURNING id, entrypoint, priority
        )
        INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
        SELECT id, 'canceled', entrypoint, priority FROM cancelled
        RETURNING job_id
        """,
        dedupe_key_prefix,
    )
    return len(rows)
