from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Actor(BaseModel):
    type: str = Field(description="user, api_key, integration, rule or system")
    id: str | None = None
    name: str = ""


class IncidentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: int
    service_id: uuid.UUID
    title: str
    status: str = Field(description="triggered, acknowledged, resolved or closed")
    priority: str | None = Field(description="P1 (highest) to P5")
    urgency: str
    severity: str
    grouping_key: str
    alert_count: int
    escalation_policy_id: uuid.UUID | None
    escalation_step: int
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: Actor | None
    resolved_at: datetime | None
    resolved_by: Actor | None


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    incident_id: uuid.UUID | None
    integration_id: uuid.UUID | None
    dedup_key: str
    status: str = Field(description="firing or resolved")
    summary: str
    severity: str
    source: str | None
    labels: dict[str, str]
    details: dict[str, Any]
    links: list[dict[str, Any]]
    event_count: int
    first_seen_at: datetime
    last_seen_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    resolved_at: datetime | None


class TimelineEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    kind: str = Field(description="Dotted event name, e.g. incident.acknowledged")
    actor_type: str
    actor_id: uuid.UUID | None
    actor_name: str
    message: str
    data: dict[str, Any]


class IncidentDetail(IncidentRead):
    alerts: list[AlertRead] = Field(description=f"The first {500} alerts, oldest first")
    timeline: list[TimelineEntryRead] = Field(description="The first 500 entries, oldest first")
