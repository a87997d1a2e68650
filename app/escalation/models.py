from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, IdMixin, TimestampMixin


class EscalationPolicy(IdMixin, TimestampMixin, Base):
    __tablename__ = "escalation_policies"
    __table_args__ = (
        Index("uq_escalation_policies_name", text("lower(name)"), unique=True),
        CheckConstraint("repeat_count BETWEEN 0 AND 9", name="repeat_count_range"),
    )

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # How many times the whole policy runs again after its last level.
    repeat_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Bumped on every change, so an incident can record which version it started with.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class EscalationLevel(IdMixin, TimestampMixin, Base):
    __tablename__ = "escalation_levels"
    __table_args__ = (
        UniqueConstraint("policy_id", "position", name="uq_escalation_levels_policy_position"),
        CheckConstraint("delay_minutes BETWEEN 1 AND 1440", name="delay_minutes_range"),
    )

    policy_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("escalation_policies.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    delay_minutes: Mapped[int] = mapped_column(Integer, default=15, server_default="15")
    # [{"type": "user", "id": "<uuid>"}, ...]
    targets: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
