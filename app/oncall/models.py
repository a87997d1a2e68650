from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, IdMixin, TimestampMixin


class UserRole(StrEnum):
    admin = "admin"
    responder = "responder"
    observer = "observer"


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (Index("uq_users_email", text("lower(email)"), unique=True),)

    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    role: Mapped[str] = mapped_column(
        String(32), default=UserRole.responder, server_default=UserRole.responder
    )


class ContactMethod(IdMixin, TimestampMixin, Base):
    __tablename__ = "contact_methods"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # Where the notifier delivers: a URL, an e-mail address, a phone number, or empty for log.
    address: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Signing secret or token, encrypted with the instance key (SecretBox).
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # The signing secret before the last rotation, valid until previous_secret_expires_at.
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Named secret settings (tokens, credential-bearing URLs) as encrypted JSON.
    secret_settings_encrypted: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
