from __future__ import annotations

import uuid
import zoneinfo
from datetime import date, datetime, time
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.core.schemas import RequestModel
from app.oncall.shifts import RotationUnit, SourceType

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Weekday = Annotated[int, Field(ge=0, le=6, description="0 is Monday, 6 is Sunday")]

# Maximum rotation turn per unit, well below the year that on-call look-ups search ahead.
MAX_ROTATION_LENGTH = {RotationUnit.hours: 336, RotationUnit.days: 90, RotationUnit.weeks: 12}


def check_time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}, e.g. Europe/London") from exc
    return value


class RestrictionIn(RequestModel):
    """A daily window, or with start_day and end_day a weekly one, in the schedule's zone."""

    start_time: time = Field(description="Local time the window opens, e.g. 09:00")
    end_time: time = Field(
        description="Local time the window closes; at or before start_time it closes the next "
        "day (daily) or the next week (weekly)"
    )
    start_day: Weekday | None = None
    end_day: Weekday | None = None

    @model_validator(mode="after")
    def _check(self) -> RestrictionIn:
        if (self.start_day is None) != (self.end_day is None):
            raise ValueError("set both start_day and end_day for a weekly window, or neither")
        if self.start_time.tzinfo is not None or self.end_time.tzinfo is not None:
            raise ValueError("times are local to the schedule's zone; leave out the UTC offset")
        if self.start_day is None and self.start_time == self.end_time:
            raise ValueError("a daily window needs different start and end times")
        return self


class LayerIn(RequestModel):
    name: Name
    members: list[uuid.UUID] = Field(
        min_length=1, max_length=100, description="User ids, in turn order; repeats allowed"
    )
    rotation_unit: RotationUnit
    rotation_length: int = Field(ge=1, description="Turn length in rotation_unit")
    start_date: date = Field(description="Local date of the first handoff")
    handoff_time: time = Field(description="Local time of every handoff, e.g. 09:00")
    handoff_day: Weekday | None = Field(
        default=None,
        description="Weekly rotations: weekday of the handoff; the first handoff is on the "
        "first such day from start_date. Defaults to start_date's weekday.",
    )
    restrictions: list[RestrictionIn] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _check(self) -> LayerIn:
        longest = MAX_ROTATION_LENGTH[self.rotation_unit]
        if self.rotation_length > longest:
            raise ValueError(
                f"rotation_length is at most {longest} {self.rotation_unit.value}; "
                "use a longer unit"
            )
        if self.handoff_day is not None and self.rotation_unit != RotationUnit.weeks:
            raise ValueError("handoff_day applies to weekly rotations only; leave it out")
        if self.handoff_time.tzinfo is not None:
            raise ValueError("handoff_time is local to the schedule's zone; leave out the offset")
        return self


class LayerUpdate(RequestModel):
    name: Name | None = None
    members: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=100)
    rotation_unit: RotationUnit | None = None
    rotation_length: int | None = Field(default=None, ge=1)
    start_date: date | None = None
    handoff_time: time | None = None
    handoff_day: Weekday | None = None
    restrictions: list[RestrictionIn] | None = Field(default=None, max_length=50)


class LayerRead(BaseModel):
    id: uuid.UUID
    position: int = Field(description="Higher positions win where several layers have someone")
    name: str
    kind: Literal["rotation", "calendar"]
    members: list[uuid.UUID]
    rotation_unit: RotationUnit | None
    rotation_length: int | None
    start_date: date | None
    handoff_time: time | None
    handoff_day: int | None
    restrictions: list[RestrictionIn]
    shift_count: int = Field(description="Imported shifts (calendar layers); 0 for rotations")


class ReachabilityWarning(BaseModel):
    user_id: uuid.UUID
    message: str


class ScheduleCreate(RequestModel):
    name: Name
    description: str = Field(default="", max_length=10_000)
    time_zone: str = Field(description="IANA zone of handoffs and restrictions")
    layers: list[LayerIn] = Field(
        default_factory=list, max_length=20, description="Bottom first; later layers win"
    )

    _zone = field_validator("time_zone")(check_time_zone)


class ScheduleUpdate(RequestModel):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    time_zone: str | None = None
    layer_order: list[uuid.UUID] | None = Field(
        default=None, description="Every layer id of the schedule, bottom first"
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)


class ScheduleRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    time_zone: str
    layers: list[LayerRead]
    warnings: list[ReachabilityWarning] = Field(
        description="Users on the schedule that no page can reach"
    )
    created_at: datetime
    updated_at: datetime


class OverrideCreate(RequestModel):
    user_id: uuid.UUID
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> OverrideCreate:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if (self.end - self.start).days > 366:
            raise ValueError("an override spans at most 366 days; add several")
        return self


class OverrideRead(BaseModel):
    id: uuid.UUID
    schedule_id: uuid.UUID
    user_id: uuid.UUID
    start: datetime
    end: datetime
    created_at: datetime


class UserBrief(BaseModel):
    id: uuid.UUID
    name: str
    email: str


class OnCallRead(BaseModel):
    at: datetime
    user: UserBrief | None = Field(description="Null when nobody is on call")
    source: SourceType | None
    layer_id: uuid.UUID | None
    layer_name: str | None
    override_id: uuid.UUID | None
    until: datetime | None = Field(description="End of the current shift")


class ShiftRead(BaseModel):
    start: datetime
    end: datetime
    user: UserBrief
    source: SourceType
    layer_id: uuid.UUID | None
    layer_name: str | None
    override_id: uuid.UUID | None


class ShiftsRead(BaseModel):
    schedule_id: uuid.UUID
    time_zone: str
    start: datetime = Field(description="Start of the window; shifts are clipped to [start, end)")
    end: datetime
    shifts: list[ShiftRead]


class CalendarFeedRead(BaseModel):
    url: str = Field(description="Subscribe to this URL in a calendar app; it needs no API key")


class SkippedEvent(BaseModel):
    uid: str
    summary: str
    start: datetime | None
    reason: str


class CalendarImportRead(BaseModel):
    layer: LayerRead
    imported: int
    skipped: list[SkippedEvent]
