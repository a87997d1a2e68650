"""Escalation policies in the database: freeze one for an incident."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.escalation import engine
from app.escalation.models import EscalationLevel, EscalationPolicy


async def load_snapshot(
    session: AsyncSession, policy_id: uuid.UUID | None
) -> dict[str, Any] | None:
    """Return the frozen current version of a policy, or None when there is none."""
    if policy_id is None:
        return None
    policy = await session.get(EscalationPolicy, policy_id)
    if policy is None:
        return None
    levels = (
        await session.scalars(select(EscalationLevel).where(EscalationLevel.policy_id == policy.id))
    ).all()
    return engine.snapshot(policy, list(levels))
