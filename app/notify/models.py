from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, IdMixin, TimestampMixin


class NotificationStatus(StrEnum):
    pending = "pending"
    retrying = "retrying"
    sent = "sent"
    failed = "failed"
    cancelled = "cancelled"
    # Held back by the contact method's throttle; a digest summarises it instead.
    throttled = "throttled"


class Notification(IdMixin, TimestampMixin, Base):
    """One message to one contact method about one incident event."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_incident_id_created_at", "incident_id", "created_at"),
        Index(
            "ix_notifications_contact_method_id_throttle_slot_at",
            "contact_method_id",
            "throttle_slot_at",
            postgresql_where=text("throttle_slot_at IS NOT NULL"),
        ),
        Index(
            "ix_notifications_contact_method_id_held",
            "contact_method_id",
            "created_at",
            postgresql_where=text("status = 'throttled' AND digest_id IS NULL"),
        ),
    )

    # None for a digest, which summarises notifications about several incidents.
    incident_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    contact_method_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("contact_methods.id", ondelete="SET NULL")
    )
    notifier: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(48))
    escalation_step: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=NotificationStatus.pending)
    # Sent to receivers so they can drop repeats; at-least-once delivery may repeat a send.
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    # The rendered Message value, so delivery needs nothing from the incidents domain.
    message: Mapped[dict[str, Any]] = mapped_column(JSONB)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    # What the receiver returned about the message it stored (DeliveryResult.external_ref).
    external_ref: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # When this notification took one of its contact method's throttle slots.
    throttle_slot_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The digest that summarised this notification after the throttle held it back.
    digest_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("notifications.id", ondelete="SET NULL")
    )


class DeliveryAttempt(IdMixin, Base):
    __tablename__ = "delivery_attempts"

    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    duration_ms: Mapped[int] = mapped_column(Integer)
    # success, retry (will be tried again) or failed (given up).
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    # The receiver's reply, cut to a few hundred bytes.
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    # The target with its secret parts masked, e.g. https://hooks.example.com/***.
    target: Mapped[str] = mapped_column(Text, default="", server_default="")
