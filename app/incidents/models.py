from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, IdMixin, TimestampMixin


class IncidentStatus(StrEnum):
    triggered = "triggered"
    acknowledged = "acknowledged"
    resolved = "resolved"
    closed = "closed"


OPEN_STATUSES = (IncidentStatus.triggered, IncidentStatus.acknowledged)


class AlertStatus(StrEnum):
    firing = "firing"
    resolved = "resolved"


class ActorType(StrEnum):
    user = "user"
    api_key = "api_key"
    integration = "integration"
    rule = "rule"
    system = "system"


class Incident(IdMixin, TimestampMixin, Base):
    __tablename__ = "incidents"
    __table_args__ = (
        # At most one open incident per grouping key: concurrent events race on this
        # index instead of on an application lock.
        Index(
            "uq_incidents_open_grouping_key",
            "service_id",
            "grouping_key",
            unique=True,
            postgresql_where=text("status IN ('triggered', 'acknowledged') AND accepts_alerts"),
        ),
        Index("ix_incidents_created_at_id", "created_at", "id"),
        Index("ix_incidents_service_id_grouping_key", "service_id", "grouping_key"),
        Index("ix_incidents_service_id_status", "service_id", "status"),
    )

    # A short number that people read in pages and chat; the UUID stays the API identifier.
    number: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=IncidentStatus.triggered)
    priority: Mapped[str | None] = mapped_column(String(2))
    urgency: Mapped[str] = mapped_column(String(8), default="high", server_default="high")
    severity: Mapped[str] = mapped_column(String(16), default="critical", server_default="critical")
    grouping_key: Mapped[str] = mapped_column(Text)
    # Why these alerts are together: mode, key, the field values and the window.
    grouping: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    # False once the grouping window has passed: new alerts of the key open a new incident.
    accepts_alerts: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    alert_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    flapping: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    previous_incident_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL")
    )
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL")
    )
    snoozed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Bumped when escalation starts over (acknowledgement timeout, snooze end, reopen);
    # jobs of an older epoch find it changed and stop.
    escalation_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    escalation_policy_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("escalation_policies.id", ondelete="SET NULL")
    )
    # The policy's levels as they were when escalation started; later edits leave it alone.
    escalation_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Sequence number of the next escalation step job; a job whose number differs is stale.
    escalation_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Where in the frozen policy the next step pages (level + cycle * levels); equal to
    # escalation_step until a manual escalation jumps to another level.
    escalation_position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Alert(IdMixin, TimestampMixin, Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_firing_dedup_key",
            "service_id",
            "dedup_key",
            unique=True,
            postgresql_where=text("status = 'firing'"),
        ),
        Index("ix_alerts_service_id_dedup_key", "service_id", "dedup_key"),
        Index("ix_alerts_incident_id_status", "incident_id", "status"),
        # Alerts waiting for their grouping key to reach the service's threshold.
        Index(
            "ix_alerts_pending",
            "service_id",
            "grouping_key",
            postgresql_where=text("incident_id IS NULL AND status = 'firing'"),
        ),
    )

    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"), index=True
    )
    incident_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE")
    )
    dedup_key: Mapped[str] = mapped_column(Text)
    grouping_key: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=AlertStatus.firing)
    flapping: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    summary: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(Text)
    labels: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    links: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    # The latest payload of this alert as the sender posted it.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    event_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    first_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Sender's own timestamps (Alertmanager startsAt/endsAt, PagerDuty payload.timestamp).
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The newest sender timestamp applied; an older event does not overwrite newer content.
    sender_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TimelineEntry(IdMixin, Base):
    __tablename__ = "timeline_entries"
    __table_args__ = (Index("ix_timeline_entries_incident_id_at_id", "incident_id", "at", "id"),)

    incident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    kind: Mapped[str] = mapped_column(String(64))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(Text, default="", server_default="")
    message: Mapped[str] = mapped_column(Text, default="", server_default="")
    data: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )


class Event(IdMixin, Base):
    """One event as received from a monitoring system: the integration's event log."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_integration_id_received_at", "integration_id", "received_at"),
    )

    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE")
    )
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    action: Mapped[str] = mapped_column(String(16))
    dedup_key: Mapped[str] = mapped_column(Text)
    # What the event did: alert.created, alert.updated, alert.resolved, ignored.no_open_alert...
    outcome: Mapped[str] = mapped_column(String(48))
    alert_id: Mapped[uuid.UUID | None]
    incident_id: Mapped[uuid.UUID | None]
    summary: Mapped[str] = mapped_column(Text, default="", server_default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class IncidentSubscriber(Base):
    """A stakeholder who gets the incident's state changes without being paged."""

    __tablename__ = "incident_subscribers"

    incident_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Postmortem(IdMixin, TimestampMixin, Base):
    """Lessons learned from a resolved incident; recording one closes the incident."""

    __tablename__ = "postmortems"

    incident_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), unique=True
    )
    summary: Mapped[str] = mapped_column(Text)
    impact: Mapped[str] = mapped_column(Text, default="", server_default="")
    root_cause: Mapped[str] = mapped_column(Text, default="", server_default="")
    lessons_learned: Mapped[str] = mapped_column(Text, default="", server_default="")
    # [{"description", "owner", "due_date", "done"}]
    action_items: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    # Ids of the timeline entries quoted in the postmortem, in order.
    timeline_entry_ids: Mapped[list[str]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    author: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
