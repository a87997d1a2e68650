"""Queries over notifications and their delivery attempts, for the API."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.notify.models import DeliveryAttempt, Notification
from app.notify.schemas import DeliveryAttemptRead, NotificationRead


def incident_notifications_query(incident_id: uuid.UUID) -> Select[Notification]:
    return select(Notification).where(Notification.incident_id == incident_id)


async def with_attempts(
    session: AsyncSession, notifications: Sequence[Notification]
) -> list[NotificationRead]:
    """Attach each notification's delivery attempts, loaded in one query."""
    ids = [notification.id for notification in notifications]
    attempts: dict[uuid.UUID, list[DeliveryAttemptRead]] = defaultdict(list)
    if ids:
        rows = await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.notification_id.in_(ids))
            .order_by(DeliveryAttempt.notification_id, DeliveryAttempt.attempt)
        )
        for row in rows:
            attempts[row.notification_id].append(DeliveryAttemptRead.model_validate(row))
    return [
        NotificationRead.model_validate(
            {
                **{
                    name: getattr(notification, name)
                    for name in NotificationRead.model_fields
                    if name != "attempts"
                },
                "attempts": attempts[notification.id],
            }
        )
        for notification in notifications
    ]
