from __future__ import annotations

import uuid
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, IdMixin, TimestampMixin


class UserRole(StrEnum):
    admin = "admin"
    responder = "responder"
    observer = "observer"


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (Index("uq_users_email", text("lower(email)"), unique=True),)

    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    role: Mapped[str] = mapped_column(
        String(32), default=UserRole.responder, server_default=UserRole.responder
    )


class ContactMethod(IdMixin, TimestampMixin, Base):
    __tablename__ = "contact_methods"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # Where the notifier delivers: a URL, an e-mail address, a phone number, or empty for log.
    address: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Signing secret or token, encrypted with the instance key (SecretBox).
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # The signing secret before the last rotation, valid until previous_secret_expires_at.
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Named secret settings (tokens, credential-bearing URLs) as encrypted JSON.
    secret_settings_encrypted: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The pending verification code, encrypted with the instance key, and its expiry.
    verification_code_encrypted: Mapped[str | None] = mapped_column(Text)
    verification_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verification_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Urgency(StrEnum):
    high = "high"
    low = "low"


class NotificationRule(IdMixin, TimestampMixin, Base):
    """Page a user through one contact method a number of minutes after they are paged."""

    __tablename__ = "notification_rules"
    __table_args__ = (
        UniqueConstraint(
            "user_id",
            "contact_method_id",
            "urgency",
            "delay_minutes",
            name="uq_notification_rules_user_method_urgency_delay",
        ),
        CheckConstraint("delay_minutes BETWEEN 0 AND 1440", name="delay_minutes_range"),
        CheckConstraint("urgency IN ('high', 'low')", name="urgency_values"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    contact_method_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contact_methods.id", ondelete="CASCADE"), index=True
    )
    delay_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    urgency: Mapped[str] = mapped_column(String(8), default=Urgency.high)


class TeamRole(StrEnum):
    manager = "manager"
    member = "member"


class Team(IdMixin, TimestampMixin, Base):
    __tablename__ = "teams"
    __table_args__ = (Index("uq_teams_name", text("lower(name)"), unique=True),)

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # An escalation target naming the team pages whoever is on call on this schedule.
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("schedules.id", ondelete="SET NULL"), index=True
    )
    escalation_policy_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("escalation_policies.id", ondelete="SET NULL"), index=True
    )


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(
        String(16), default=TeamRole.member, server_default=TeamRole.member
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Schedule(IdMixin, TimestampMixin, Base):
    __tablename__ = "schedules"
    __table_args__ = (Index("uq_schedules_name", text("lower(name)"), unique=True),)

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # IANA zone of handoff times and restrictions, e.g. Europe/London.
    time_zone: Mapped[str] = mapped_column(String(64))


class LayerKind(StrEnum):
    rotation = "rotation"
    calendar = "calendar"


class ScheduleLayer(IdMixin, TimestampMixin, Base):
    """A rotation, or the shifts of an imported calendar; higher positions win."""

    __tablename__ = "schedule_layers"
    __table_args__ = (
        UniqueConstraint("schedule_id", "position", name="uq_schedule_layers_schedule_position"),
        CheckConstraint("kind IN ('rotation', 'calendar')", name="kind_values"),
    )

    schedule_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("schedules.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default=LayerKind.rotation)
    # Rotation layers: turns of rotation_length rotation_units, the first one handed
    # over at handoff_time on start_date (weekly: on the first handoff_day from then).
    rotation_unit: Mapped[str | None] = mapped_column(String(8))
    rotation_length: Mapped[int | None] = mapped_column(Integer)
    start_date: Mapped[date | None] = mapped_column(Date)
    handoff_time: Mapped[time | None] = mapped_column(Time)
    # 0 is Monday.
    handoff_day: Mapped[int | None] = mapped_column(Integer)
    # [{"start_time": "09:00", "end_time": "17:00", "start_day": 0, "end_day": 4}, ...]
    restrictions: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    # Calendar layers: [{"user_id": ..., "start": RFC 3339, "end": RFC 3339}, ...]
    fixed_shifts: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )


class ScheduleLayerMember(Base):
    __tablename__ = "schedule_layer_members"

    layer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("schedule_layers.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )


class ScheduleOverride(IdMixin, TimestampMixin, Base):
    __tablename__ = "schedule_overrides"
    __table_args__ = (
        Index("ix_schedule_overrides_schedule_id_end_at", "schedule_id", "end_at"),
        CheckConstraint("end_at > start_at", name="end_after_start"),
    )

    schedule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    start_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
