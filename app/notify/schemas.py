from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DeliveryAttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt: int
    started_at: datetime
    duration_ms: int
    outcome: str = Field(description="success, retry (tried again later) or failed (given up)")
    status_code: int | None = Field(description="The HTTP status, or the SMTP reply code")
    error: str | None
    response_excerpt: str | None = Field(description="The start of the receiver's response")
    target: str = Field(description="The address with credentials masked")


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    incident_id: uuid.UUID | None
    user_id: uuid.UUID | None
    contact_method_id: uuid.UUID | None
    notifier: str
    event: str
    escalation_step: int | None
    status: str = Field(
        description="pending, retrying, sent, failed, cancelled or throttled (held back by "
        "the rate limit and summarised by the digest digest_id)"
    )
    attempt_count: int
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None
    digest_id: uuid.UUID | None
    attempts: list[DeliveryAttemptRead] = Field(description="Every attempt, oldest first")


class VerificationRead(BaseModel):
    ok: bool
    status_code: int | None
    error: str | None
    verified_at: datetime | None


class SecretRotated(BaseModel):
    secret: str = Field(description="The new signing secret; shown only in this response")
    previous_secret_expires_at: datetime = Field(
        description="Until then requests carry a second signature made with the old secret"
    )
