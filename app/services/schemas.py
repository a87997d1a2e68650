from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.services.models import GroupingMode, IntegrationKind

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ServiceCreate(BaseModel):
    name: Name
    description: str = Field(default="", max_length=10_000)
    escalation_policy_id: uuid.UUID | None = None


class ServiceUpdate(BaseModel):
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
    created_at: datetime
    updated_at: datetime


class IntegrationCreate(BaseModel):
    name: Name
    kind: IntegrationKind
    settings: dict[str, Any] = Field(default_factory=dict)


class IntegrationUpdate(BaseModel):
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
