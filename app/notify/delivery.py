"""Create notifications and deliver them: one attempt per job, each attempt stored."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection
from app.core.logging import get_logger
from app.core.security import SecretBox
from app.core.time import utcnow
from app.jobs.queue import NOTIFICATION_DELIVER, Job, enqueue
from app.notify.base import DeliveryResult, Message, Notifier, Target
from app.notify.contacts import build_target
from app.notify.models import DeliveryAttempt, Notification, NotificationStatus
from app.oncall.models import ContactMethod

log = get_logger(__name__)

FINAL_STATUSES = (NotificationStatus.sent, NotificationStatus.failed, NotificationStatus.cancelled)
# The wait after failed attempt n is BACKOFF_BASE_SECONDS * 2 ** (n - 1), capped, with
# ±BACKOFF_JITTER of random spread so that many retries do not arrive at once.
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 300.0
BACKOFF_JITTER = 0.2


@dataclass(frozen=True, slots=True)
class NotificationSpec:
    incident_id: uuid.UUID
    user_id: uuid.UUID | None
    contact_method_id: uuid.UUID
    notifier: str
    event: str
    escalation_step: int | None
    message: Message


def deliver_job(notification_id: uuid.UUID, attempt: int, delay: timedelta | None = None) -> Job:
    return Job(
        NOTIFICATION_DELIVER,
        {"notification_id": notification_id},
        delay=delay,
        dedupe_key=f"{NOTIFICATION_DELIVER}:{notification_id}:{attempt}",
    )


async def create_notifications(
    connection: asyncpg.Connection, specs: Sequence[NotificationSpec]
) -> list[uuid.UUID]:
    """Insert notifications and enqueue their first delivery; skip idempotency keys seen before.

    A job that runs twice (a worker died after its work but before pgqueuer logged it)
    creates the same keys again, and the unique index turns the repeat into a no-op.
    """
    if not specs:
        return []
    rows = await connection.fetch(
        """
        INSERT INTO notifications (
            id, incident_id, user_id, contact_method_id, notifier, event, escalation_step,
            status, idempotency_key, message, attempt_count, created_at, updated_at
        )
        SELECT id, incident_id, user_id, contact_method_id, notifier, event, escalation_step,
               'pending', idempotency_key, message, 0, now(), now()
        FROM unnest(
            $1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::int[],
            $8::text[], $9::jsonb[]
        ) AS t(id, incident_id, user_id, contact_method_id, notifier, event, escalation_step,
               idempotency_key, message)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
        """,
        [uuid.UUID(spec.message.notification_id) for spec in specs],
        [spec.incident_id for spec in specs],
        [spec.user_id for spec in specs],
        [spec.contact_method_id for spec in specs],
        [spec.notifier for spec in specs],
        [spec.event for spec in specs],
        [spec.escalation_step for spec in specs],
        [spec.message.idempotency_key for spec in specs],
        [_json_text(spec.message) for spec in specs],
    )
    created = [row["id"] for row in rows]
    await enqueue(connection, [deliver_job(notification_id, 1) for notification_id in created])
    return created


def _json_text(message: Message) -> str:
    return json.dumps(message.to_dict(), ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class PreparedDelivery:
    notification_id: uuid.UUID
    # None for a digest.
    incident_id: uuid.UUID | None
    event: str
    attempt: int
    message: Message
    target: Target


async def load_pending(session: AsyncSession, notification_id: uuid.UUID) -> Notification | None:
    """Return the notification if it still needs a delivery attempt, else None."""
    notification = await session.get(Notification, notification_id)
    if notification is None or notification.status in FINAL_STATUSES:
        return None
    return notification


async def prepare(
    session: AsyncSession, notification: Notification, box: SecretBox
) -> PreparedDelivery | str:
    """Build the delivery of the next attempt, or return why there is nothing to send."""
    if notification.contact_method_id is None:
        return "contact method deleted"
    method = await session.scalar(
        select(ContactMethod).where(ContactMethod.id == notification.contact_method_id)
    )
    if method is None:
        return "contact method deleted"
    if not method.enabled:
        return "contact method disabled"
    return PreparedDelivery(
        notification_id=notification.id,
        incident_id=notification.incident_id,
        event=notification.event,
        attempt=notification.attempt_count + 1,
        message=Message.from_dict(notification.message),
        target=build_target(method, box, utcnow()),
    )


async def attempt_delivery(
    notifier: Notifier, delivery: PreparedDelivery
) -> tuple[DeliveryResult, int]:
    """Send once; return the result and its duration in milliseconds."""
    started = time.perf_counter()
    try:
        result = await notifier.send(delivery.message, delivery.target)
    except Exception as exc:
        # A notifier must report failures, but a plugin bug must not lose the page either.
        log.exception("notifier.crashed", notifier=notifier.kind)
        result = DeliveryResult(ok=False, retryable=True, error=f"notifier crashed: {exc!r}")
    return result, int((time.perf_counter() - started) * 1000)


def backoff_seconds(attempt: int) -> float:
    """Return the wait after failed attempt ``attempt`` (1-based), before jitter."""
    return min(BACKOFF_BASE_SECONDS * 2.0 ** (attempt - 1), BACKOFF_MAX_SECONDS)


def retry_delay(attempt: int, retry_after: float | None) -> timedelta:
    """Return the backoff after ``attempt`` with jitter, or the receiver's Retry-After."""
    if retry_after is not None:
        return timedelta(seconds=retry_after)
    spread = random.uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER)  # noqa: S311
    return timedelta(seconds=backoff_seconds(attempt) * spread)


def retry_schedule(max_attempts: int) -> list[float]:
    """Return when each attempt starts, in seconds after the first, without jitter.

    This is the schedule when every attempt fails at once and no Retry-After arrives.
    """
    starts = [0.0]
    for attempt in range(1, max_attempts):
        starts.append(starts[-1] + backoff_seconds(attempt))
    return starts


async def record_attempt(
    session: AsyncSession,
    delivery: PreparedDelivery,
    result: DeliveryResult,
    duration_ms: int,
    *,
    max_attempts: int,
) -> str:
    """Store the attempt, update the notification and enqueue a retry; return the new status."""
    notification = await session.get(Notification, delivery.notification_id, with_for_update=True)
    if notification is None:
        return NotificationStatus.cancelled
    now = utcnow()
    if result.ok:
        status, outcome = NotificationStatus.sent, "success"
    elif result.retryable and delivery.attempt < max_attempts:
        status, outcome = NotificationStatus.retrying, "retry"
    else:
        status, outcome = NotificationStatus.failed, "failed"

    session.add(
        DeliveryAttempt(
            notification_id=notification.id,
            attempt=delivery.attempt,
            started_at=now - timedelta(milliseconds=duration_ms),
            duration_ms=duration_ms,
            outcome=outcome,
            status_code=result.status_code,
            error=result.error,
            response_excerpt=result.response_excerpt,
            target=delivery.target.masked(),
        )
    )
    notification.attempt_count = delivery.attempt
    notification.status = status
    notification.last_error = result.error
    notification.updated_at = now
    if result.ok:
        notification.sent_at = now
        if result.external_ref:
            notification.external_ref = result.external_ref
    await session.flush()

    if status == NotificationStatus.retrying:
        delay = retry_delay(delivery.attempt, result.retry_after)
        await enqueue(
            await raw_connection(session),
            [deliver_job(notification.id, delivery.attempt + 1, delay)],
        )
    log_method = log.info if result.ok else log.warning if status == "retrying" else log.error
    log_method(
        f"delivery.{outcome}",
        notification_id=str(notification.id),
        incident_id=str(notification.incident_id) if notification.incident_id else None,
        notifier=notification.notifier,
        attempt=delivery.attempt,
        status_code=result.status_code,
        duration_ms=duration_ms,
        error=result.error,
    )
    return status
