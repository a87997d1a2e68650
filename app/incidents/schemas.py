from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.core.schemas import RequestModel


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
    grouping: dict[str, Any] = Field(
        description="Why these alerts are together: mode, key, field values, window, reason"
    )
    alert_count: int
    flapping: bool
    previous_incident_id: uuid.UUID | None = Field(
        description="The last incident of the same grouping key, when this one follows it"
    )
    merged_into_id: uuid.UUID | None
    snoozed_until: datetime | None
    escalation_policy_id: uuid.UUID | None
    escalation_step: int
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: Actor | None
    resolved_at: datetime | None
    resolved_by: Actor | None
    closed_at: datetime | None


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    incident_id: uuid.UUID | None
    integration_id: uuid.UUID | None
    dedup_key: str
    grouping_key: str | None
    status: str = Field(description="firing or resolved")
    flapping: bool
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


Priority = Literal["P1", "P2", "P3", "P4", "P5"]


class IncidentUpdate(RequestModel):
    title: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1024)]
        | None
    ) = None
    priority: Priority | None = None
    urgency: Literal["high", "low"] | None = None


class SnoozeRequest(RequestModel):
    """Give either ``until`` or ``minutes``."""

    until: datetime | None = Field(default=None, description="RFC 3339 time, at most 7 days ahead")
    minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)

    @model_validator(mode="after")
    def _one_of(self) -> SnoozeRequest:
        if (self.until is None) == (self.minutes is None):
            raise ValueError("give exactly one of until and minutes")
        if self.until is not None and self.until.tzinfo is None:
            raise ValueError("until needs a time zone, e.g. 2026-12-04T18:00:00Z")
        return self


class NoteCreate(RequestModel):
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]


class MergeRequest(RequestModel):
    incident_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=100, description="Incidents whose alerts move into this one"
    )


class SubscriberCreate(RequestModel):
    user_id: uuid.UUID


class SubscriberRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str


class ActionItem(RequestModel):
    description: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
    ]
    owner: str | None = Field(default=None, max_length=200)
    due_date: date | None = None
    done: bool = False


class PostmortemWrite(RequestModel):
    summary: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)
    ]
    impact: str = Field(default="", max_length=20_000)
    root_cause: str = Field(default="", max_length=20_000)
    lessons_learned: str = Field(default="", max_length=20_000)
    action_items: list[ActionItem] = Field(default_factory=list, max_length=100)
    timeline_entry_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=500,
        description="Timeline entries to quote; empty quotes the incident's state changes",
    )


class PostmortemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    incident_id: uuid.UUID
    summary: str
    impact: str
    root_cause: str
    lessons_learned: str
    action_items: list[ActionItem]
    timeline: list[TimelineEntryRead]
    author: Actor
    created_at: datetime
    updated_at: datetime
