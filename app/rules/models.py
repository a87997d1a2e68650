from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, IdMixin, TimestampMixin


class Rule(IdMixin, TimestampMixin, Base):
    """An ordered classification rule; global when ``service_id`` is null."""

    __tablename__ = "rules"
    __table_args__ = (Index("ix_rules_service_id_position", "service_id", "position"),)

    service_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE")
    )
    # 0-based place among the rules of the same scope; kept dense by every change.
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    continue_: Mapped[bool] = mapped_column(
        "continue", Boolean, default=False, server_default=text("false")
    )
    # Bumped on every change; incidents record the version that classified them.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    conditions: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    actions: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )


class RuleRevision(Base):
    """One row whose token changes with every change to rules, the matrix, windows or
    silences. Each process compares it with the token of its cached rule set."""

    __tablename__ = "rule_revisions"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    token: Mapped[uuid.UUID]
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PriorityMatrixSetting(Base):
    """The configured impact-by-urgency matrix and severity defaults (one row)."""

    __tablename__ = "priority_matrix"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RuleAuditEntry(IdMixin, Base):
    """One change to a rule, the priority matrix, a maintenance window or a silence."""

    __tablename__ = "rule_audit_log"
    __table_args__ = (
        Index("ix_rule_audit_log_at_id", "at", "id"),
        Index("ix_rule_audit_log_entity_id", "entity_id"),
    )

    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # rule, priority_matrix, maintenance_window or silence.
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[uuid.UUID | None]
    # created, updated, deleted, reordered or expired.
    action: Mapped[str] = mapped_column(String(16))
    version: Mapped[int | None] = mapped_column(Integer)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class AlertDecision(Base):
    """The rules' classification of an alert at its creation, kept for timelines and replays."""

    __tablename__ = "alert_decisions"

    alert_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The service after routing, and the policy a route chose (null: the service's own).
    # No foreign keys, so the history outlives the service or policy.
    service_id: Mapped[uuid.UUID]
    escalation_policy_id: Mapped[uuid.UUID | None]
    impact: Mapped[int] = mapped_column(SmallInteger)
    urgency: Mapped[int] = mapped_column(SmallInteger)
    priority: Mapped[str] = mapped_column(String(2))
    tags: Mapped[list[str]] = mapped_column(JSONB, default=list)
    title: Mapped[str] = mapped_column(Text)
    suppressed: Mapped[bool] = mapped_column(Boolean)
    silence_ids: Mapped[list[str]] = mapped_column(JSONB, default=list)
    maintenance_window_id: Mapped[uuid.UUID | None]
    # [{"rule_id", "version", "name", "actions"}] for every rule that applied, in order.
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)


class MaintenanceWindow(IdMixin, TimestampMixin, Base):
    __tablename__ = "maintenance_windows"

    service_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The first (or only) occurrence.
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    time_zone: Mapped[str] = mapped_column(String(64))
    rrule: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[dict[str, Any]] = mapped_column(JSONB)


class Silence(IdMixin, TimestampMixin, Base):
    __tablename__ = "silences"
    __table_args__ = (
        CheckConstraint("ends_at IS NOT NULL OR until_resolved", name="has_an_end"),
        Index("ix_silences_expired_at_ends_at", "expired_at", "ends_at"),
    )

    service_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE")
    )
    matchers: Mapped[list[str]] = mapped_column(JSONB)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    until_resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when someone expires the silence or the alerts it silenced have all resolved.
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[dict[str, Any]] = mapped_column(JSONB)
    comment: Mapped[str] = mapped_column(Text)


class SilencedAlert(Base):
    """An alert a silence has matched; an until-resolved silence ends when all have resolved."""

    __tablename__ = "silenced_alerts"

    silence_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("silences.id", ondelete="CASCADE"), primary_key=True
    )
    alert_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PagingHold(Base):
    """An open incident whose escalation is paused, and why."""

    __tablename__ = "paging_holds"

    incident_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    # maintenance, silence or suppressed.
    kind: Mapped[str] = mapped_column(String(16))
    # The maintenance window or silence that holds the incident.
    ref_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    step: Mapped[int] = mapped_column(Integer)
    held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When escalation is due to resume by itself; null when only an event can release it.
    resume_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
