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
    grouping_window_seconds: Mapped[int | None]


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
