from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.core.schemas import RequestModel

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Target(RequestModel):
    type: Literal["user", "schedule", "team"] = Field(
        description="A user; a schedule (whoever is on call on it); a team (whoever is on "
        "call on the team's schedule)"
    )
    id: uuid.UUID


class LevelIn(RequestModel):
    delay_minutes: int = Field(
        default=15, ge=1, le=1440, description="Minutes before the next level is paged"
    )
    targets: list[Target] = Field(min_length=1, max_length=50)


class LevelRead(LevelIn):
    position: int


class EscalationPolicyCreate(RequestModel):
    name: Name
    description: str = Field(default="", max_length=10_000)
    repeat_count: int = Field(
        default=0, ge=0, le=9, description="Runs of the whole policy after the first"
    )
    levels: list[LevelIn] = Field(min_length=1, max_length=20)


class EscalationPolicyUpdate(RequestModel):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    repeat_count: int | None = Field(default=None, ge=0, le=9)
    levels: list[LevelIn] | None = Field(
        default=None, min_length=1, max_length=20, description="Replaces all levels"
    )


class EscalationPolicyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    repeat_count: int
    version: int
    levels: list[LevelRead]
    warnings: list[str] = Field(
        default_factory=list, description="Targets that pages cannot reach at the moment"
    )
    created_at: datetime
    updated_at: datetime


class EscalateIn(RequestModel):
    level: int = Field(
        ge=1, le=20, description="Level to page now; 1 is the first level (levels[0])"
    )


class ReassignIn(RequestModel):
    user_id: uuid.UUID = Field(description="The user to page now, by their notification rules")
