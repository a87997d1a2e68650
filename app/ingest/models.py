from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, IdMixin


class ChangeEvent(IdMixin, Base):
    """A change to a service (a deploy, a configuration push) reported by a sender."""

    __tablename__ = "change_events"
    __table_args__ = (Index("ix_change_events_service_id_at_id", "service_id", "at", "id"),)

    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL")
    )
    # When the change happened: the sender's timestamp, else the time Tocsin received it.
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    summary: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)
    custom_details: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    links: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )


class Heartbeat(Base):
    """The ping state of a heartbeat integration; a row exists once the first ping arrived."""

    __tablename__ = "heartbeats"

    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    last_ping_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The ping is missed when none arrives before this instant.
    deadline_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When the queued heartbeat.check job runs; null while none is queued.
    check_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when a miss opened an incident; the next ping resolves it and clears this.
    missed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
