"""Throttle notifications per contact method and summarise the held ones in digests.

A limit such as ``5/15m`` allows five notifications in any 15-minute window. Each
notification that passes takes a slot (``notifications.throttle_slot_at``); one that
would exceed a limit is held (status ``throttled``) and a digest job is scheduled. The
digest sends one message that lists every held notification. Digests take no slot, but
a contact method gets at most one digest per DIGEST_MIN_INTERVAL.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import raw_connection
from app.core.ids import uuid7
from app.core.logging import get_logger
from app.jobs.queue import NOTIFICATION_DIGEST_JOB, Job, enqueue
from app.notify.base import NOTIFICATION_DIGEST, Message
from app.notify.delivery import deliver_job
from app.notify.limits import Limit, limits_for, next_free_at
from app.notify.models import Notification, NotificationStatus

__all__ = ["DIGEST_MIN_INTERVAL", "Limit", "create_digest", "hold", "limits_for", "reserve_slot"]

log = get_logger(__name__)

DIGEST_MIN_INTERVAL = timedelta(minutes=15)


async def _lock_contact_method(session: AsyncSession, contact_method_id: uuid.UUID) -> None:
    # NO KEY UPDATE serialises throttle decisions for one contact method without blocking
    # inserts of notifications that reference it (those take KEY SHARE locks).
    await session.execute(
        text("SELECT 1 FROM contact_methods WHERE id = :id FOR NO KEY UPDATE"),
        {"id": contact_method_id},
    )


async def reserve_slot(
    session: AsyncSession,
    notification: Notification,
    limits: Sequence[Limit],
    now: datetime,
) -> datetime | None:
    """Give the notification a slot and return None, or return when a slot frees.

    A notification keeps its slot across retries. Call inside the transaction that
    decides the delivery; the row lock on the contact method lasts until its commit.
    """
    if not limits or notification.throttle_slot_at is not None:
        return None
    if notification.contact_method_id is None or notification.event == NOTIFICATION_DIGEST:
        return None
    await _lock_contact_method(session, notification.contact_method_id)
    longest = max(limit.window for limit in limits)
    slots = (
        await session.scalars(
            select(Notification.throttle_slot_at).where(
                Notification.contact_method_id == notification.contact_method_id,
                Notification.throttle_slot_at > now - longest,
            )
        )
    ).all()
    free_at = next_free_at([slot for slot in slots if slot is not None], now, limits)
    if free_at is None:
        notification.throttle_slot_at = now
    return free_at


async def hold(
    session: AsyncSession,
    notification: Notification,
    limits: Sequence[Limit],
    free_at: datetime,
    now: datetime,
) -> None:
    """Mark the notification throttled and make sure a digest job is queued."""
    assert notification.contact_method_id is not None
    notification.status = NotificationStatus.throttled
    notification.last_error = (
        "held back by the throttle ("
        + ", ".join(limit.describe() for limit in limits)
        + "); a digest will summarise it"
    )
    notification.updated_at = now
    last_digest = await _last_digest_at(session, notification.contact_method_id)
    due = free_at
    if last_digest is not None:
        due = max(due, last_digest + DIGEST_MIN_INTERVAL)
    await enqueue(
        await raw_connection(session),
        [digest_job(notification.contact_method_id, max(due - now, timedelta(0)))],
    )
    log.info(
        "delivery.throttled",
        notification_id=str(notification.id),
        contact_method_id=str(notification.contact_method_id),
        digest_due_in_s=int((due - now).total_seconds()),
    )


def digest_job(contact_method_id: uuid.UUID, delay: timedelta) -> Job:
    # While one digest job is queued, holding more notifications adds none.
    return Job(
        NOTIFICATION_DIGEST_JOB,
        {"contact_method_id": contact_method_id},
        delay=delay,
        dedupe_key=f"{NOTIFICATION_DIGEST_JOB}:{contact_method_id}",
    )


async def _last_digest_at(session: AsyncSession, contact_method_id: uuid.UUID) -> datetime | None:
    value: datetime | None = await session.scalar(
        select(func.max(Notification.created_at)).where(
            Notification.contact_method_id == contact_method_id,
            Notification.event == NOTIFICATION_DIGEST,
        )
    )
    return value


def digest_item(notification: Notification) -> dict[str, Any]:
    """Summarise one held notification from its stored message."""
    incident = notification.message.get("incident", {})
    return {
        "notification_id": str(notification.id),
        "event": notification.event,
        "incident_id": incident.get("id"),
        "number": incident.get("number"),
        "title": incident.get("title"),
        "priority": incident.get("priority"),
        "service": (incident.get("service") or {}).get("name"),
    }


@dataclass(frozen=True, slots=True)
class DigestOutcome:
    digest_id: uuid.UUID
    # (incident id, held notification id) for each summarised notification.
    summarised: list[tuple[uuid.UUID | None, uuid.UUID]]


async def create_digest(
    session: AsyncSession,
    contact_method_id: uuid.UUID,
    *,
    links: dict[str, str],
    min_interval: timedelta,
    now: datetime,
) -> DigestOutcome | None:
    """Create one digest notification for the held notifications of a contact method.

    Returns None when nothing is held. When the last digest is younger than
    ``min_interval``, queues this job again for later and returns None.
    """
    await _lock_contact_method(session, contact_method_id)
    last_digest = await _last_digest_at(session, contact_method_id)
    if last_digest is not None and last_digest + min_interval > now:
        await enqueue(
            await raw_connection(session),
            [digest_job(contact_method_id, last_digest + min_interval - now)],
        )
        return None
    held = list(
        (
            await session.scalars(
                select(Notification)
                .where(
                    Notification.contact_method_id == contact_method_id,
                    Notification.status == NotificationStatus.throttled,
                    Notification.digest_id.is_(None),
                )
                .order_by(Notification.created_at, Notification.id)
                .with_for_update()
            )
        ).all()
    )
    if not held:
        return None
    # Incidents may have been acknowledged or resolved while their pages were held.
    rows = await session.execute(
        text("SELECT id, status FROM incidents WHERE id = ANY(:ids)"),
        {"ids": sorted({n.incident_id for n in held if n.incident_id is not None})},
    )
    statuses: dict[uuid.UUID, str] = {row.id: row.status for row in rows}
    first = held[0]
    digest_id = uuid7()
    message = Message(
        notification_id=str(digest_id),
        idempotency_key=f"digest:{contact_method_id}:{first.id}",
        event=NOTIFICATION_DIGEST,
        incident={},
        recipient=first.message.get("recipient", {}),
        links=links,
        digest=[
            digest_item(notification)
            | {
                "status": statuses.get(notification.incident_id)
                if notification.incident_id
                else None
            }
            for notification in held
        ],
    )
    session.add(
        Notification(
            id=digest_id,
            incident_id=None,
            user_id=first.user_id,
            contact_method_id=contact_method_id,
            notifier=first.notifier,
            event=NOTIFICATION_DIGEST,
            escalation_step=None,
            status=NotificationStatus.pending,
            idempotency_key=message.idempotency_key,
            message=message.to_dict(),
            attempt_count=0,
        )
    )
    await session.flush()
    await session.execute(
        update(Notification)
        .where(Notification.id.in_([notification.id for notification in held]))
        .values(digest_id=digest_id, updated_at=now)
    )
    await enqueue(await raw_connection(session), [deliver_job(digest_id, 1)])
    log.info(
        "delivery.digest_created",
        notification_id=str(digest_id),
        contact_method_id=str(contact_method_id),
        summarised=len(held),
    )
    return DigestOutcome(
        digest_id=digest_id,
        summarised=[(notification.incident_id, notification.id) for notification in held],
    )
