from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.core.schemas import RequestModel
from app.services.models import GroupingMode, IntegrationKind

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


Seconds = Annotated[int, Field(ge=1, le=366 * 24 * 3600)]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class LifecycleFields(RequestModel):
    """Grouping and lifecycle settings of a service; null turns a feature off."""

    grouping_mode: GroupingMode | None = Field(
        default=None,
        description="intelligent (the sender's group, else the dedup key), by_fields or none",
    )
    grouping_fields: list[FieldName] | None = Field(
        default=None,
        max_length=20,
        description="by_fields: label names, or source, severity or summary",
    )
    grouping_window_seconds: Seconds | None = Field(
        default=None, description="by_fields: after this long, alerts open a new incident"
    )
    alert_threshold_count: Annotated[int, Field(ge=2, le=10_000)] | None = Field(
        default=None, description="Open an incident only once this many alerts of a key arrived"
    )
    alert_threshold_window_seconds: Seconds | None = Field(
        default=None, description="...within this many seconds (default 300)"
    )
    flap_threshold: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        default=None, description="An alert firing more often than this is flapping"
    )
    flap_window_seconds: Seconds | None = None
    flap_settle_seconds: Seconds | None = Field(
        default=None, description="A flapping alert must stay resolved this long"
    )
    reopen_window_seconds: Seconds | None = Field(
        default=None, description="A trigger this soon after a resolve reopens the incident"
    )
    auto_resolve_seconds: Seconds | None = Field(
        default=None, description="Resolve an incident after this long without events"
    )
    acknowledge_timeout_seconds: Seconds | None = Field(
        default=None, description="An acknowledged incident triggers again after this long"
    )
    close_after_seconds: Seconds | None = Field(
        default=None, description="Close resolved incidents this long after they resolved"
    )

    @model_validator(mode="after")
    def _check_pairs(self) -> LifecycleFields:
        if self.flap_threshold is not None and self.flap_window_seconds is None:
            raise ValueError("flap_threshold needs flap_window_seconds")
        return self


class ServiceCreate(LifecycleFields):
    name: Name
    description: str = Field(default="", max_length=10_000)
    escalation_policy_id: uuid.UUID | None = None


class ServiceUpdate(LifecycleFields):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    escalation_policy_id: uuid.UUID | None = None


class ServiceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    escalation_policy_id: uuid.UUID | None
    grouping_mode: GroupingMode
    grouping_fields: list[str]
    grouping_window_seconds: int | None
    alert_threshold_count: int | None
    alert_threshold_window_seconds: int | None
    flap_threshold: int | None
    flap_window_seconds: int | None
    flap_settle_seconds: int | None
    reopen_window_seconds: int | None
    auto_resolve_seconds: int | None
    acknowledge_timeout_seconds: int | None
    close_after_seconds: int | None
    created_at: datetime
    updated_at: datetime


class IntegrationCreate(RequestModel):
    name: Name
    kind: IntegrationKind
    settings: dict[str, Any] = Field(default_factory=dict)


class IntegrationUpdate(RequestModel):
    name: Name | None = None
    enabled: bool | None = None
    settings: dict[str, Any] | None = Field(
        default=None, description="Replaces all settings, e.g. a heartbeat's interval_seconds"
    )


class IntegrationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    service_id: uuid.UUID
    name: str
    kind: IntegrationKind
    enabled: bool
    key_hint: str = Field(description="The last four characters of the key")
    settings: dict[str, Any]
    last_event_at: datetime | None
    created_at: datetime


class IntegrationCreated(IntegrationRead):
    key: str = Field(description="The secret key; shown only in this answer")
    url: str = Field(description="Where the sender posts events")
