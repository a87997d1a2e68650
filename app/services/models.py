from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, IdMixin, TimestampMixin


class GroupingMode(StrEnum):
    intelligent = "intelligent"
    by_fields = "by_fields"
    none = "none"


class IntegrationKind(StrEnum):
    alertmanager = "alertmanager"
    grafana = "grafana"
    pagerduty = "pagerduty"
    opsgenie = "opsgenie"
    generic = "generic"
    heartbeat = "heartbeat"


class Service(IdMixin, TimestampMixin, Base):
    __tablename__ = "services"
    __table_args__ = (Index("uq_services_name", text("lower(name)"), unique=True),)

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    escalation_policy_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("escalation_policies.id", ondelete="SET NULL"), index=True
    )
    grouping_mode: Mapped[str] = mapped_column(
        String(32), default=GroupingMode.intelligent, server_default=GroupingMode.intelligent
    )
    grouping_fields: Mapped[list[str]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    # by_fields: after this long, alerts of a key start a new incident.
    grouping_window_seconds: Mapped[int | None]
    # Open an incident only once this many alerts of a key arrived within the window.
    alert_threshold_count: Mapped[int | None]
    alert_threshold_window_seconds: Mapped[int | None]
    # An alert that fired more than flap_threshold times within flap_window_seconds is
    # flapping: its incident stays open until the alert stays resolved for the settle time.
    flap_threshold: Mapped[int | None]
    flap_window_seconds: Mapped[int | None]
    flap_settle_seconds: Mapped[int | None]
    # A trigger this soon after its incident resolved reopens that incident.
    reopen_window_seconds: Mapped[int | None]
    # Resolve an open incident after this long without events.
    auto_resolve_seconds: Mapped[int | None]
    # An acknowledged incident goes back to triggered after this long unresolved.
    acknowledge_timeout_seconds: Mapped[int | None]
    # Close resolved incidents this long after they resolved.
    close_after_seconds: Mapped[int | None]


class Integration(IdMixin, TimestampMixin, Base):
    __tablename__ = "integrations"

    service_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The key's last four characters, so people can tell keys apart without the secret.
    key_hint: Mapped[str] = mapped_column(String(8))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    settings: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    last_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The secret that signs request bodies (HMAC-SHA256), encrypted with the instance key;
    # when set, the generic endpoint rejects unsigned requests.
    signing_secret_encrypted: Mapped[str | None] = mapped_column(Text)
