from __future__ import annotations

import uuid
import zoneinfo
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

from app.core.schemas import RequestModel
from app.oncall.models import TeamRole, Urgency, UserRole

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _check_time_zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}, e.g. Europe/London") from exc
    return value


class UserCreate(RequestModel):
    name: Name
    email: EmailStr
    time_zone: str = "UTC"
    role: UserRole = UserRole.responder

    _zone = field_validator("time_zone")(_check_time_zone)


class UserUpdate(RequestModel):
    name: Name | None = None
    email: EmailStr | None = None
    time_zone: str | None = None
    role: UserRole | None = None

    _zone = field_validator("time_zone")(_check_time_zone)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str
    time_zone: str
    role: UserRole
    created_at: datetime
    updated_at: datetime


ADDRESS_DESCRIPTION = (
    "Where to deliver: a URL (webhook; Slack, Teams, Mattermost or Discord webhook), an "
    "e-mail address, an E.164 phone number, a Slack channel ID or a Telegram chat id. "
    "Webhook URLs of chat services are credentials: they are stored encrypted and shown masked"
)
SETTINGS_DESCRIPTION = (
    "Notifier settings, e.g. template and content_type (webhook), token (Slack), bot_token "
    "(Telegram), throttle ('5/15m,11/1h' or 'off'). Tokens are stored encrypted and not "
    "returned; see docs/notifiers.md"
)


class ContactMethodCreate(RequestModel):
    kind: str = Field(description="A notifier name: webhook, slack, email, sms, log, ...")
    name: str = Field(default="", max_length=200)
    address: str = Field(default="", max_length=2048, description=ADDRESS_DESCRIPTION)
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=512,
        description="Webhook signing secret; generated when left out",
    )
    settings: dict[str, Any] = Field(default_factory=dict, description=SETTINGS_DESCRIPTION)


class ContactMethodUpdate(RequestModel):
    name: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None
    address: str | None = Field(default=None, max_length=2048, description=ADDRESS_DESCRIPTION)
    secret: str | None = Field(
        default=None, min_length=16, max_length=512, description="A new webhook signing secret"
    )
    settings: dict[str, Any] | None = Field(
        default=None,
        description=SETTINGS_DESCRIPTION + ". Secret settings left out keep their values",
    )


class ContactMethodRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    name: str
    address: str
    settings: dict[str, Any]
    enabled: bool
    verified_at: datetime | None
    verification_expires_at: datetime | None = Field(
        description="When a code was sent: the time it stops being accepted"
    )
    created_at: datetime


class ContactMethodCreated(ContactMethodRead):
    secret: str | None = Field(
        description="The signing secret (webhook); shown only in this answer"
    )


class NotificationRuleCreate(RequestModel):
    contact_method_id: uuid.UUID
    delay_minutes: int = Field(
        default=0, ge=0, le=1440, description="Minutes after the user is paged"
    )
    urgency: Urgency = Field(default=Urgency.high, description="Incidents this rule applies to")


class NotificationRuleUpdate(RequestModel):
    delay_minutes: int | None = Field(default=None, ge=0, le=1440)
    urgency: Urgency | None = None


class NotificationRuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    contact_method_id: uuid.UUID
    delay_minutes: int
    urgency: Urgency
    created_at: datetime


class NotificationRulesRead(BaseModel):
    items: list[NotificationRuleRead]
    default_applies: dict[Urgency, bool] = Field(
        description="Per urgency: true when no usable rule exists, so every usable contact "
        "method is paged at once"
    )
    warnings: list[str] = Field(description="Why pages may not reach the user")


class VerificationStarted(BaseModel):
    contact_method_id: uuid.UUID
    expires_at: datetime


class VerificationConfirm(RequestModel):
    code: str = Field(min_length=4, max_length=16, description="The code the notifier delivered")


class TeamMemberIn(RequestModel):
    user_id: uuid.UUID
    role: TeamRole = TeamRole.member


class TeamCreate(RequestModel):
    name: Name
    description: str = Field(default="", max_length=10_000)
    schedule_id: uuid.UUID | None = Field(
        default=None, description="The schedule whose current on-call is the team's on-call"
    )
    escalation_policy_id: uuid.UUID | None = None
    members: list[TeamMemberIn] = Field(default_factory=list, max_length=500)


class TeamUpdate(RequestModel):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=10_000)
    schedule_id: uuid.UUID | None = None
    escalation_policy_id: uuid.UUID | None = None
    members: list[TeamMemberIn] | None = Field(
        default=None, max_length=500, description="Replaces all members"
    )


class TeamRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    schedule_id: uuid.UUID | None
    escalation_policy_id: uuid.UUID | None
    members: list[TeamMemberIn]
    warnings: list[str] = Field(description="Members that no page can reach")
    created_at: datetime
    updated_at: datetime
