from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.models import Base, IdMixin, TimestampMixin


class ChatIdentity(IdMixin, TimestampMixin, Base):
    """A chat account (a Slack member) that acts as a Tocsin user when it presses a button."""

    __tablename__ = "chat_identities"
    __table_args__ = (
        UniqueConstraint(
            "provider", "team_id", "external_user_id", name="uq_chat_identities_account"
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    # The workspace (Slack team id); empty matches the account in any workspace.
    team_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    external_user_id: Mapped[str] = mapped_column(String(64))


class ActionLinkUse(Base):
    """A link that performed its action once; using it again only shows the outcome."""

    __tablename__ = "action_link_uses"
    __table_args__ = (Index("ix_action_link_uses_expires_at", "expires_at"),)

    # The link token's MAC, unique per token.
    mac: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    incident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID]
    action: Mapped[str] = mapped_column(String(32))
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(Text, default="", server_default="")
